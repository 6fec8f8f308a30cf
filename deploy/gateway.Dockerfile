# Static binary in an empty image: no package manager, nothing to patch but
# the binary. Built by `make images` with the classic builder.
FROM scratch
COPY gateway /gateway
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# A static busybox (Debian busybox-static) so main-session /exec commands
# (mode non-main runs the owner's main session on the gateway host) have a
# shell; `busybox sh` runs its applets without symlinks. Non-main sessions
# never run here: they go to sandboxd.
COPY busybox /bin/busybox
ENTRYPOINT ["/gateway"]
