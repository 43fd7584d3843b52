# Sourced by the test command: installs Debian's Chromium and a CJK font (the journal is partly in Chinese: without
# one, the browser tests and screenshots draw it as boxes) for the browser tests, starts a local PostgreSQL
# (Debian's package) for the store tests and exports LAB_NOTEBOOK_TEST_PG_URL. Where it cannot (no root, no apt),
# those tests skip and say why; under CI they must run: a service that fails to start ends this script with status 1
# and a message, so the test command's `&&` stops there.
_services_fail() {  # $1: what went wrong, $2: what follows outside CI
  if [ "${CI:-}" = "true" ]; then
    echo "services: $1. Under CI every service must start: stopping before the tests." >&2
    return 1
  fi
  echo "services: $1; $2" >&2
  return 0
}
_services_missing=""
command -v pg_ctlcluster >/dev/null 2>&1 || _services_missing="$_services_missing postgresql"
command -v chromium >/dev/null 2>&1 || _services_missing="$_services_missing chromium fonts-noto-color-emoji"
# libfaketime: the test that a worker whose host clock is 10 minutes off keeps its leases (tests/engine/test_hosts.py)
command -v faketime >/dev/null 2>&1 || _services_missing="$_services_missing faketime"
# Any font fontconfig knows for Chinese will do; Debian's Noto CJK is the one installed when there is none.
{ command -v fc-list >/dev/null 2>&1 && fc-list ':lang=zh' family | grep -q .; } \
  || _services_missing="$_services_missing fonts-noto-cjk"
if [ -n "$_services_missing" ] && [ "$(id -u)" = 0 ]; then
  echo "services: installing$_services_missing (Debian packages)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $_services_missing) >/dev/null 2>&1 \
    || { _services_fail "apt-get could not install$_services_missing" "the tests that need them will skip" || return 1; }
fi
if command -v pg_lsclusters >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  read -r _pg_version _pg_cluster _pg_port _rest < <(pg_lsclusters -h | head -n 1)
  pg_ctlcluster "$_pg_version" "$_pg_cluster" start >/dev/null 2>&1 || true
  # A role and database of the tests' own, with a fresh password each time: an existing superuser is never
  # touched, and the password reaches the tests by environment only.
  _pg_password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  if su postgres -c "psql -p $_pg_port -v ON_ERROR_STOP=1 -q" >/dev/null 2>&1 <<SQL
DO \$\$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lab_notebook_test') THEN
    ALTER ROLE lab_notebook_test LOGIN CREATEDB NOSUPERUSER PASSWORD '$_pg_password';
  ELSE
    CREATE ROLE lab_notebook_test LOGIN CREATEDB NOSUPERUSER PASSWORD '$_pg_password';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE lab_notebook_test OWNER lab_notebook_test'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'lab_notebook_test') \\gexec
SQL
  then
    export LAB_NOTEBOOK_TEST_PG_URL="postgresql+psycopg://lab_notebook_test:${_pg_password}@127.0.0.1:${_pg_port}/lab_notebook_test"
    echo "services: PostgreSQL $_pg_version on port $_pg_port"
  else
    _services_fail "PostgreSQL did not start" "the PostgreSQL store tests will skip" || return 1
  fi
else
  _services_fail "no PostgreSQL (needs root and apt)" "the PostgreSQL store tests will skip" || return 1
fi
# A single-node Slurm for the Slurm executor's tests (exports LAB_TEST_SLURM=1).
source "$(dirname "${BASH_SOURCE[0]}")/slurm.sh" || return 1
