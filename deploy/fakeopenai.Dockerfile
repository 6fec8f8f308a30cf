# Test-only fake OpenAI chat-completions API (gateway/cmd/fakeopenai) for the
# integration tests; never part of the deployed stack. Built by `make images`.
FROM scratch
COPY fakeopenai /fakeopenai
USER 65534:65534
ENTRYPOINT ["/fakeopenai"]
CMD ["-addr", "0.0.0.0:8082"]
