#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine: installs what the bot needs, then
#   scripts/bot.sh run [chatops args…]   runs the bot (console when no platform is configured)
#   scripts/bot.sh test                  installs the test extras (and PostgreSQL for its
#                                        throwaway test cluster), runs ruff, mypy and pytest
#   scripts/bot.sh test-clock            runs pytest on a faked clock crossing midnight, a month
#                                        and a year end, then in Pacific/Auckland (any-date check)
set -euo pipefail
cd "$(dirname "$0")/.."

action="${1:-run}"
shift || true

testing=false
case "$action" in test | test-clock) testing=true ;; esac

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
if $testing; then
    command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
    # The PostgreSQL tests start a throwaway cluster (tests/postgres.py) unless
    # CHATOPS_TEST_POSTGRES names a server; Debian keeps initdb off PATH.
    if [ -z "${CHATOPS_TEST_POSTGRES:-}" ] && ! command -v initdb >/dev/null \
        && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        need_apt+=(postgresql)
    fi
fi
if [ "$action" = test-clock ]; then
    command -v faketime >/dev/null || need_apt+=(faketime)
fi
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${need_apt[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "chatops needs Python 3.11 or newer (found $(python3 --version))" >&2
    exit 1
}
[ -x .venv/bin/python ] || python3 -m venv .venv
extras=""
$testing && extras="[test]"
# Reinstall only when pyproject.toml changed since the last install.
stamp=".venv/.installed${extras:+-test}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" >&2
    touch "$stamp"
fi

case "$action" in
run)
    exec .venv/bin/chatops "${@:-run}"
    ;;
test)
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    exec .venv/bin/pytest -q "$@"
    ;;
test-clock)
    # The suite must pass on any date: once on a clock that starts a minute before a new year
    # (UTC) and runs on, so midnight, a month end and a year end pass while the tests run;
    # subprocesses continue that clock instead of restarting it (DONT_RESET). The monotonic
    # clock stays faked too: with --exclude-monotonic, time.sleep fails with EINVAL.
    echo "pytest at 2027-12-31 23:59:00 UTC, the clock running" >&2
    TZ=UTC FAKETIME_DONT_RESET=1 faketime -f '@2027-12-31 23:59:00' .venv/bin/pytest -q "$@"
    echo "pytest in TZ=Pacific/Auckland" >&2
    TZ=Pacific/Auckland exec .venv/bin/pytest -q "$@"
    ;;
*)
    echo "usage: scripts/bot.sh run [chatops args…] | test [pytest args…] | test-clock [pytest args…]" >&2
    exit 2
    ;;
esac
