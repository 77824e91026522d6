# fanflow — build, run, test. `make run` and `make test` are all a fresh clone needs.
GO          ?= go
BIN         := bin/fanflow
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Arguments for `make run`, e.g. make run ARGS="--time-scale 0"
ARGS        ?=

.PHONY: build run test test-short lint bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/fanflow

## run: serve on 127.0.0.1:8080 with the embedded store (./data) and the built-in mock job services
run: build
	./$(BIN) serve $(ARGS)

## test: vet, then every test with the race detector, then a short fuzz run
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz FuzzOrderInterleaving -fuzztime 10s ./order/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data
