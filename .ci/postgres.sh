#!/usr/bin/env bash
# Start a local PostgreSQL for the write-back tests: a cluster listening on 127.0.0.1 only,
# with a login role and an empty database for the tests. Idempotent (a second run finds
# everything in place). Needs root (CI runs as root); installs the Debian package if missing.
# It exports nothing; it prints the SQLAlchemy URL on its last line, for example:
#   export KA_ML_TEST_PG_URL="$(bash .ci/postgres.sh | tail -n 1)"
# Overridable: PGPORT (5432), KA_ML_PG_USER / KA_ML_PG_PASSWORD / KA_ML_PG_DB (ka_ml_test).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
port="${PGPORT:-5432}"
user="${KA_ML_PG_USER:-ka_ml_test}"
password="${KA_ML_PG_PASSWORD:-ka_ml_test}"
db="${KA_ML_PG_DB:-ka_ml_test}"

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  echo "== installing postgresql (apt)" >&2
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main --port "$port" >/dev/null
fi
# conf.d is read last, so these win over the packaged postgresql.conf
mkdir -p "/etc/postgresql/$version/main/conf.d"
printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$port" >"/etc/postgresql/$version/main/conf.d/ka_ml.conf"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -qx online; then
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "postgresql did not start on 127.0.0.1:$port" >&2; exit 1; }

psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != "1" ]; then
  psql_admin -c "CREATE ROLE \"$user\" LOGIN PASSWORD '$password'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
  psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$user\""
fi
echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$db"
