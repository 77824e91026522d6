# fanflow — build, run, test. `make run` and `make test` are all a fresh clone needs.
GO          ?= go
BIN         := bin/fanflow
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Arguments for `make run`, e.g. make run ARGS="--time-scale 0"
ARGS        ?=
# Extra arguments for both runs of `make bench`, e.g. BENCH_ARGS="--orders 20000"
BENCH_ARGS  ?=

.PHONY: build run test test-short lint bench bench-micro bench-recovery fuzz clean

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
	$(GO) test -run '^$$' -fuzz FuzzOrderLifecycle -fuzztime 10s ./order/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSON$$' -fuzztime 10s ./order/
	$(GO) test -run '^$$' -fuzz '^FuzzCreateRequest$$' -fuzztime 10s ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzCallbackRequest$$' -fuzztime 10s ./httpapi/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the standard workload (bench/README.md) on Redis, then on the embedded
## store, each with the bare-HTTP ceiling; the reports go to bench/results/*.json
bench: build
	./$(BIN) bench --store redis --ceiling --json bench/results/redis.json $(BENCH_ARGS)
	./$(BIN) bench --store embedded --ceiling --json bench/results/embedded.json $(BENCH_ARGS)

## bench-micro: the Go micro-benchmarks of every package (not the recovery one)
bench-micro:
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkRecovery$$' -benchmem ./...

## bench-recovery: restart with 100,000 running orders in Redis (bench/README.md, "Recovery")
bench-recovery:
	$(GO) test -run '^$$' -bench '^BenchmarkRecovery$$' -benchtime 1x ./cmd/fanflow/

clean:
	rm -rf bin data
