#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1 for the PostgreSQL store tests; prints the URL the tests use
# (APPUSERS_TEST_POSTGRES: a role that may CREATE DATABASE; the tests create and drop their own).
#
# Idempotent: if the test role already answers on 127.0.0.1:$port nothing is done. Otherwise, as
# root with apt-get, Debian's `postgresql` package is installed when missing, its cluster started
# (pg_ctlcluster; CI containers have no init system), and the role created. Without root (or
# apt-get) it prints nothing and says so on stderr: the PostgreSQL tests then skip, except in CI
# (CI=true), where they fail.
set -euo pipefail

port="${APPUSERS_PG_PORT:-5432}"
role=appusers_test
password=appusers_test  # a loopback-only test role; not a secret
url="postgresql://$role:$password@127.0.0.1:$port/postgres"

ready() {
    command -v psql >/dev/null 2>&1 \
        && PGPASSWORD=$password PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$port" -U "$role" -d postgres \
            -Atqc "SELECT 1" >/dev/null 2>&1
}

if ready; then
    echo "$url"
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: no PostgreSQL with role $role on 127.0.0.1:$port and not root (or no" \
        "apt-get): the PostgreSQL tests will skip; set APPUSERS_TEST_POSTGRES to run them" >&2
    exit 0
fi

# Several CI runs on one machine may get here at once: one installs and starts, the others wait.
exec 8>/tmp/appusers-install-postgres.lock
flock 8
if ! ready; then
    if ! command -v pg_lsclusters >/dev/null 2>&1 || [[ -z "$(pg_lsclusters -h 2>/dev/null)" ]]; then
        echo "install-postgres: installing Debian's postgresql package" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        # 8>&-: the server the package starts must not inherit (and so hold forever) the lock.
        apt-get install -y -qq postgresql >&2 8>&-
    fi
    # The cluster on $port (the package creates "main" on 5432).
    if ! read -r version cluster _port status _rest < <(pg_lsclusters -h | awk -v p="$port" '$3 == p'); then
        echo "install-postgres: no PostgreSQL cluster on port $port (pg_lsclusters)" >&2
        exit 1
    fi
    if [[ "$status" != online* ]]; then
        pg_ctlcluster "$version" "$cluster" start >&2 8>&-
    fi
    for _ in $(seq 1 50); do
        runuser -u postgres -- pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.2
    done
    runuser -u postgres -- psql -p "$port" -qc "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
            CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password';
        END IF; END \$\$;" >&2
fi
if ! ready; then
    echo "install-postgres: PostgreSQL started but role $role cannot log in on 127.0.0.1:$port" >&2
    exit 1
fi
echo "$url"
