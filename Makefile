# moltbot-secure. `make up` runs the stack, `make test` runs the tests.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export TESTCONTAINERS_RYUK_DISABLED := true

GO      ?= go
GOBIN   ?= $(shell $(GO) env GOPATH)/bin
BUF     ?= $(GOBIN)/buf
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
MODULES := proto services gateway secretsd pairingd sandboxd cli
SERVICES := gateway secretsd pairingd sandboxd
LDFLAGS := -s -w -X main.version=$(VERSION)
DOCKER_GID ?= $(shell stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)
TEST_TIMEOUT ?= 15m
# Tag of the service images (parallel worktrees use their own; the harness reads MOLTBOT_IMAGE_TAG).
IMAGE_TAG ?= latest
export MOLTBOT_IMAGE_TAG := $(IMAGE_TAG)
TESTONLY_TAG := $(if $(filter latest,$(IMAGE_TAG)),insecure-testonly,insecure-testonly-$(IMAGE_TAG))

# Pinned tool versions (see GRPC-NOTES.md: newest that build with our Go).
BUF_VERSION             := v1.75.0
PROTOC_GEN_GO_VERSION   := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2
GREMLINS_VERSION        := v0.6.0

.PHONY: all build binaries images images-testonly prereqs up down purge test test-unit test-integration test-e2e lint proto proto-check tools chromium \
        bench fuzz soak sandbox-image sandbox-testimage clean

all: build

build binaries:
	@mkdir -p bin
	@for s in $(SERVICES); do \
	  (cd $$s && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/$$s ./cmd/$$s) || exit 1; \
	done
	@cd cli && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/moltbot ./cmd/moltbot
	@cd sandboxd && if [ -d cmd/moltbot-sandbox-agent ]; then CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../bin/moltbot-sandbox-agent ./cmd/moltbot-sandbox-agent; fi
	@cp /etc/ssl/certs/ca-certificates.crt bin/ 2>/dev/null || touch bin/ca-certificates.crt

images: binaries
	@for s in $(SERVICES) cli; do \
	  docker build -q -t moltbot-$$s:$(IMAGE_TAG) -f deploy/$$s.Dockerfile bin >/dev/null || exit 1; \
	done
	@cd gateway && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../bin/faketelegram ./cmd/faketelegram && docker build -q -t moltbot-faketelegram:$(IMAGE_TAG) -f ../deploy/faketelegram.Dockerfile ../bin >/dev/null
	@cd gateway && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../bin/fakeopenai ./cmd/fakeopenai && docker build -q -t moltbot-fakeopenai:$(IMAGE_TAG) -f ../deploy/fakeopenai.Dockerfile ../bin >/dev/null
	@echo "images: $(foreach s,$(SERVICES) cli,moltbot-$(s):$(IMAGE_TAG))"

# One stack per compose project. The defaults are the operator's stack;
# `make test-e2e` runs its own (project, port, bundle dir and sandbox
# instance), so tests never touch the stack you run.
MOLTBOT_BUNDLE_DIR ?= ./.moltbot
MOLTBOT_PORT       ?= 18789
MOLTBOT_UI_PORT    ?= 18793
MOLTBOT_INSTANCE   ?= compose
export MOLTBOT_BUNDLE_DIR MOLTBOT_PORT MOLTBOT_UI_PORT MOLTBOT_INSTANCE
# The pointer the CLI reads to find the stack (empty: not written).
MOLTBOT_POINTER    ?= $(HOME)/.moltbot/stack.json
export MOLTBOT_POINTER

# What a fresh machine lacks (a compose, debootstrap): installed with apt-get
# as root, else make stops at once with the one command to run.
prereqs:
	@bash deploy/prereqs.sh up

up: prereqs images sandbox-image
	@mkdir -p $(MOLTBOT_BUNDLE_DIR) && chmod 700 $(MOLTBOT_BUNDLE_DIR)
	HOST_UID=$$(id -u) HOST_GID=$$(id -g) DOCKER_GID=$(DOCKER_GID) $(COMPOSE) up -d --remove-orphans
	@deploy/wait-healthy.sh 60 $(COMPOSE)
	@deploy/stack-pointer.sh "$(MOLTBOT_POINTER)" $(MOLTBOT_BUNDLE_DIR) 127.0.0.1:$(MOLTBOT_PORT)
	@bash deploy/next-steps.sh "$(MOLTBOT_BUNDLE_DIR)" "$(MOLTBOT_PORT)" "$(COMPOSE)" "$(MOLTBOT_POINTER)"

# Sandbox containers and volumes are created by sandboxd, not compose, so
# compose does not know them: they are found by label.
SANDBOX_LABEL := moltbot.sandbox.instance=$(MOLTBOT_INSTANCE)

# down stops the stack and KEEPS every volume (config, approvals, the
# encryption key); only the throwaway sandbox containers go.
down:
	$(COMPOSE) --profile demo down --remove-orphans
	@ids=$$(docker ps -aq --filter label=$(SANDBOX_LABEL)); [ -z "$$ids" ] || docker rm -f $$ids >/dev/null

# purge deletes everything the stack keeps. It says what first.
purge:
	@echo "make purge deletes the stack's volumes and sandboxd's sandbox containers and volumes. Lost for good:"
	@echo "  - the encryption key (secretsd's keys/secrets.key): nothing encrypted under it can be read again;"
	@echo "    export it first with \`moltbot security key export --out FILE\`"
	@echo "  - the config (moltbot.json and its sealed backups), pairing approvals and allowlists,"
	@echo "    sessions, sandbox workspaces and the security log"
	@echo "  - the internal CA, certificates and service tokens (a new set is made by the next make up)"
	$(COMPOSE) --profile demo down -v --remove-orphans
	@ids=$$(docker ps -aq --filter label=$(SANDBOX_LABEL)); [ -z "$$ids" ] || docker rm -f $$ids >/dev/null
	@vols=$$(docker volume ls -q --filter label=$(SANDBOX_LABEL)); [ -z "$$vols" ] || docker volume rm $$vols >/dev/null
	@echo "purged"

test: test-unit test-integration test-e2e

test-unit:
	@for m in $(MODULES); do \
	  echo "== $$m"; (cd $$m && $(GO) test -short -count=1 -timeout $(TEST_TIMEOUT) ./...) || exit 1; \
	done

# A gateway built with a test-only switch that disables auth, so the
# integration tests can show `security audit --deep` catches it. Never shipped.
images-testonly: binaries
	@mkdir -p bin/testonly && cp bin/ca-certificates.crt bin/testonly/
	@cd gateway && CGO_ENABLED=0 $(GO) build -trimpath -tags moltbot_insecure_testonly -o ../bin/testonly/gateway ./cmd/gateway
	@docker build -q -t moltbot-gateway:$(TESTONLY_TAG) -f deploy/gateway.Dockerfile bin/testonly >/dev/null

# The operator's journey on a real compose stack of its own (see E2E_ENV):
# make up, the CLI as an operator types it, make down/up, purge. The stack is
# purged afterwards whatever the result.
E2E_ENV := COMPOSE_PROJECT_NAME=moltbot-e2e MOLTBOT_PORT=18799 MOLTBOT_UI_PORT=18783 MOLTBOT_BUNDLE_DIR=./.moltbot-e2e MOLTBOT_INSTANCE=e2e MOLTBOT_POINTER= MOLTBOT_DEMO_PORT=18795
test-e2e:
	@export $(E2E_ENV); rc=0; \
	  (cd services && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags e2e ./e2e/...) || rc=$$?; \
	  $(MAKE) -s purge >/dev/null 2>&1 || true; rm -rf ./.moltbot-e2e; exit $$rc

test-integration: images images-testonly sandbox-testimage chromium
	cd services && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags integration ./integration/...
	cd sandboxd && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags integration ./internal/...

# The Control UI's browser tests drive Debian's Chromium (chromedp).
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium with apt-get" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: proto-check
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) vet -tags integration ./... && $(GO) vet -tags e2e ./...) || exit 1; done
	$(BUF) lint

tools:
	@[ -x $(BUF) ] && $(BUF) --version 2>/dev/null | grep -q "$(BUF_VERSION:v%=%)" || $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@[ -x $(GOBIN)/protoc-gen-go ] || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@[ -x $(GOBIN)/protoc-gen-go-grpc ] || $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)

proto: tools
	PATH=$(GOBIN):$$PATH $(BUF) generate

# Fails when the committed generated code differs from a fresh generation.
proto-check: proto
	@git diff --exit-code -- proto || (echo "generated code is stale: run make proto and commit" && exit 1)
	@test -z "$$(git status --porcelain -- proto)" || (git status --porcelain -- proto; echo "untracked generated files: run make proto and commit"; exit 1)

sandbox-image: binaries
	bash deploy/sandbox/build-image.sh

sandbox-testimage: binaries
	@if [ -f deploy/sandbox/build-testimage.sh ]; then bash deploy/sandbox/build-testimage.sh; fi

bench:
	bash deploy/bench.sh

fuzz:
	bash deploy/fuzz.sh $${FUZZTIME:-30s}

# Mutation testing (TESTING.md): the patch mutants in deploy/mutants, then
# gremlins on the security packages with their bars. MUTATE_TARGETS limits
# gremlins to some packages (names as in deploy/mutate.sh).
.PHONY: mutate mutate-patches tools-mutate
mutate: tools-mutate
	bash deploy/mutate.sh all $(MUTATE_TARGETS)

mutate-patches:
	bash deploy/mutate.sh patches

tools-mutate:
	@[ -x $(GOBIN)/gremlins ] && $(GO) version -m $(GOBIN)/gremlins | grep -q "gremlins[[:space:]]*$(GREMLINS_VERSION)" || $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)

soak:
	MOLTBOT_SOAK=1 bash deploy/fuzz.sh 5m

clean:
	rm -rf bin
