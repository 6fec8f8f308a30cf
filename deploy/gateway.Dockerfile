# Static binary in an empty image: no package manager, no shell, nothing to
# patch but the binary. The gateway runs no command itself: every /exec,
# the owner's main session included, goes to sandboxd. The CA bundle is
# data (TLS to the Telegram and model APIs), not a program.
# Built by `make images` with the classic builder.
FROM scratch
COPY gateway /gateway
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/gateway"]
