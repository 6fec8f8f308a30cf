# Test-only fake Telegram Bot API (gateway/cmd/faketelegram) for the
# integration tests; never part of the deployed stack. Built by `make images`.
FROM scratch
COPY faketelegram /faketelegram
USER 65534:65534
ENTRYPOINT ["/faketelegram"]
CMD ["-addr", "0.0.0.0:8081"]
