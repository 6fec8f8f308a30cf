# Static binary in an empty image: no shell, no package manager, nothing to
# patch but the binary. Built by `make images` with the classic builder.
FROM scratch
COPY sandboxd /sandboxd
ENTRYPOINT ["/sandboxd"]
