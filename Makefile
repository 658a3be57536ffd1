# Two entry points for a fresh Debian machine (see README.md): `make demo` and `make test`.
# Both install the Debian packages they need first.
SWIFT ?= swift

.PHONY: deps build release demo test bench stress fuzz e2e-wordpress e2e-wordpress-short clean

deps:
	@sh scripts/install-deps.sh

build: deps
	$(SWIFT) build

# The agent as merchant hosts run it: .build/release/molam-upgrade with the Swift runtime and
# Foundation linked in, so a host needs only Debian's C libraries (libcurl4, libarchive13,
# libsqlite3-0, libssl3, libmariadb3), and the process maps 6 MiB less of them.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product molam-upgrade

# A real upgrade and an automatic rollback on a throw-away copy of the fixture site (./demo-site).
demo: deps
	@sh scripts/demo.sh

# The whole test suite: unit tests and end-to-end tests that run the built binary, then the short
# live-payment run on a real WordPress + MariaDB shop (its Debian packages installed first if missing).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	@sh scripts/wordpress/install-deps.sh
	python3 -u scripts/wordpress/e2e.py --short --agent "$$($(SWIFT) build --show-bin-path)/molam-upgrade"

# Benchmarks that print figures (never timed assertions in tests): a cron run with nothing to do, then
# DESIGN.md's reference workload (5,000 files, 10 / 100 / 400 MiB of owned tables, generated under
# .build/bench-reference) side by side with a naive shell pipeline, as a Markdown table (medians of
# BENCH_RUNS runs; about 10 minutes on 2 cores with the default 3), then its MySQL rows: 100 MiB of
# owned tables in a private MariaDB server (mariadb-server, installed by deps) started and stopped
# in that directory, about 2.5 minutes a run. BENCH_ARGS passes options on (e.g.
# BENCH_ARGS="--json-out bench.json", "--skip-mysql", "--mysql-only --mysql-statement-log").
bench: release
	python3 scripts/bench-cron.py .build/release/molam-upgrade 50
	python3 -u scripts/bench-reference.py --binary .build/release/molam-upgrade --runs $${BENCH_RUNS:-3} $(BENCH_ARGS)

# Random SIGKILLs of real upgrades, rollbacks and recoveries (sleeps on purpose, so not a test):
# after each, the site must be exactly one version. Prints the outcome counts.
stress: deps
	$(SWIFT) build --product molam-upgrade
	python3 scripts/crash-stress.py "$$($(SWIFT) build --show-bin-path)/molam-upgrade" $${ITERATIONS:-300}

# Mutated releases (flipped, spliced, truncated bytes) the binary has never seen: never a crash, the
# site always exactly one version. Prints the exit-status counts.
fuzz: deps
	$(SWIFT) build --product molam-upgrade
	python3 scripts/archive-fuzz.py "$$($(SWIFT) build --show-bin-path)/molam-upgrade" $${ITERATIONS:-500}

# The live-payment test (issue 10): a real WordPress + MariaDB shop on loopback (Debian's packages,
# installed first if missing), payments posted through the molam-form plugin during upgrades,
# failing upgrades, lazy-loading swaps and manual rollbacks, under both opcache settings of
# `php -S`. Prints a table of figures; fails only on a harness error or an acknowledged payment
# without its order row. E2E_ARGS passes options on (e.g. E2E_ARGS="--agent-features new").
e2e-wordpress: deps
	@sh scripts/wordpress/install-deps.sh
	$(SWIFT) build --product molam-upgrade
	python3 -u scripts/wordpress/e2e.py --agent "$$($(SWIFT) build --show-bin-path)/molam-upgrade" $(E2E_ARGS)

# The same, a few runs of each scenario under both swap settings and both opcache settings (about
# 4 minutes; `make test` runs it too, so CI does).
e2e-wordpress-short: deps
	@sh scripts/wordpress/install-deps.sh
	$(SWIFT) build --product molam-upgrade
	python3 -u scripts/wordpress/e2e.py --short --agent "$$($(SWIFT) build --show-bin-path)/molam-upgrade" $(E2E_ARGS)

clean:
	rm -rf .build demo-site
