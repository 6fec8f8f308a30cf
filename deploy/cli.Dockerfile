# The moltbot CLI: the compose stack's one-shot init (certs init) and
# `docker-compose run --rm cli ...`.
FROM scratch
COPY moltbot /moltbot
ENTRYPOINT ["/moltbot"]
