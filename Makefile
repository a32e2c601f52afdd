# Volt CI. `make test` is the one command that runs every test; `.ci/run` calls it.
GO ?= go
SHELL := /bin/bash

.PHONY: all build test deps verify proto bench sim sim-sweep soak mutants clean

all: build

# build makes bin/volt without cgo: a static binary that runs on any Linux
# machine (no libc to match) and takes about 1.6 MiB less memory per process
# (a runner idles at about 23 MiB RSS instead of 25; BENCHMARKS.md, target 9).
build:
	CGO_ENABLED=0 $(GO) build -o bin/volt ./cmd/volt

# deps installs what the tests need and a fresh machine may lack (git,
# python3, Debian's bubblewrap for the job sandbox, whose tests fail
# without it, Debian's chromium for the web UI's browser tests, and
# Debian's etcd-server, whose etcd 3.4 the failover tests run as a real
# three-member cluster on 127.0.0.1).
deps:
	@missing=""; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || missing="$$missing etcd-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# verify fails on unformatted code, vet findings, or generated code that no
# longer matches messages/proto (the checksum test in messages/).
verify:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run 'TestGeneratedCodeMatchesProto' ./messages/

# test runs every test with the race detector, then the simulator's full
# 2000-seed sweep and the planted-bug checks without it (ten times faster),
# then the very command a user runs (sim-sweep).
test: deps verify
	$(GO) test -race -count=1 -timeout 14m ./...
	$(GO) test -count=1 -run 'TestSweep|TestScenarios|TestDeterminism' ./sim/
	$(GO) test -count=1 -tags plantedbugs -run 'TestPlantedBugsAreCaught|TestTimerBugsCaughtOften' ./property_test/
	$(MAKE) sim-sweep

# sim-sweep runs `volt sim --seeds N` with its default flags, as a user
# would, on a fixed range so that CI is repeatable (about 20 s on 2 cores).
SWEEP_FROM ?= 1
SWEEP_SEEDS ?= 6000
sim-sweep: build
	bin/volt sim --from $(SWEEP_FROM) --seeds $(SWEEP_SEEDS)
	bin/volt sim --dispatchers 3 --from $(SWEEP_FROM) --seeds 2000

# soak runs the default `volt sim` on a fresh random range (SOAK_SEEDS,
# default 20000) and prints where it starts, so a failure replays: run it
# before calling a change to a core done. SOAK_FROM=N repeats a range.
SOAK_SEEDS ?= 20000
soak: build
	@from=$${SOAK_FROM:-$$(( $$(date +%s%N | cksum | cut -d' ' -f1) * 65536 + $$RANDOM ))}; \
	echo "soak: volt sim --from $$from --seeds $(SOAK_SEEDS)  (replay the range with SOAK_FROM=$$from)"; \
	bin/volt sim --from $$from --seeds $(SOAK_SEEDS)
	@from=$${SOAK_FROM:-$$(( $$(date +%s%N | cksum | cut -d' ' -f1) * 65536 + $$RANDOM ))}; \
	echo "soak: volt sim --dispatchers 3 --from $$from --seeds $(SOAK_SEEDS)  (replay the range with SOAK_FROM=$$from)"; \
	bin/volt sim --dispatchers 3 --from $$from --seeds $(SOAK_SEEDS)
	VOLT_FAILOVERS=30 $(GO) test -count=1 -timeout 20m -run TestFailoverSoak -v ./e2e/

# sim sweeps SEEDS seeds of the simulator on every core: make sim SEEDS=1000000
SEEDS ?= 100000
sim:
	$(GO) run ./cmd/volt sim --seeds $(SEEDS)

# mutants mutates a sample of the four cores (conditionals, boundaries,
# increments, && and ||, removed statements, swapped effects) and judges
# each mutant with the simulator's and property tests alone, then prints
# the survivors and the efficacy, killed / (killed + survived). A run takes
# about 30 minutes on 2 cores; it is not part of `make test`. MUTANTS_SEED
# picks the sample (0: a new one, printed so that it can be replayed);
# MUTANTS_FLAGS adds flags, for example -timeout 2m or -list.
MUTANTS_SEED ?= 0
MUTANTS_N ?= 300
mutants:
	$(GO) run ./internal/mutate/cmd -seed $(MUTANTS_SEED) -n $(MUTANTS_N) $(MUTANTS_FLAGS)

# proto regenerates messages/volt.pb.go (needs buf and protoc-gen-go:
#   go install github.com/bufbuild/buf/cmd/buf@v1.75.0
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
# and records the .proto checksum that `make test` compares.
proto:
	cd messages && PATH="$$PATH:$$($(GO) env GOPATH)/bin" buf generate
	cd messages && VOLT_WRITE_PROTO_SUM=1 $(GO) test -count=1 -run TestProtoSumWriter .

# bench runs every package's Go benchmarks, then the end-to-end harness in
# bench/ (real volt processes on 127.0.0.1, see BENCHMARKS.md), all in the
# format benchstat reads: make bench | tee new.txt; benchstat new.txt
# BENCH_COUNT (default 5) and BENCH_FLAGS (say -benchtime 10x, or
# -bench Throughput) tune the bench/ part.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $$($(GO) list ./... | grep -v '/bench$$')
	$(GO) test -run '^$$' -bench . -count $(or $(BENCH_COUNT),5) -timeout 30m $(BENCH_FLAGS) ./bench/

clean:
	rm -rf bin
