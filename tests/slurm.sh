# Sourced by tests/services.sh: a real single-node Slurm for the Slurm executor's tests (Debian's slurmctld,
# slurmd and munge; this host the controller and its only node, with its CPUs). Exports LAB_TEST_SLURM=1 once
# `sinfo` shows the node idle. Where it cannot (no root, no apt), the Slurm tests skip and say why; under CI they
# must run. Sourcing it twice is fine: what is installed, written or running is left as it is.
_slurm_fail() {
  echo "slurm: $1" >&2
  if [ "${CI:-}" = "true" ]; then return 1; fi
  return 0
}
_slurm_start() {
  local host cpus started
  started=$(date +%s)
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "slurm: installing slurm-wlm munge (Debian packages)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/dev/null 2>&1 \
      || { _slurm_fail "apt-get could not install slurm-wlm munge; the Slurm tests will skip"; return; }
  fi
  host=$(hostname -s)
  cpus=$(nproc)
  mkdir -p /etc/munge /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    head -c 1024 /dev/urandom > /etc/munge/munge.key
  fi
  chown -R munge:munge /etc/munge /run/munge 2>/dev/null
  chmod 0400 /etc/munge/munge.key
  # Ours only when it says so: a slurm.conf someone else wrote is never overwritten.
  if [ ! -f /etc/slurm/slurm.conf ] || grep -q '^# written by tests/slurm.sh' /etc/slurm/slurm.conf; then
    cat > /etc/slurm/slurm.conf.new <<CONF
# written by tests/slurm.sh: a single-node Slurm for the notebook's tests
ClusterName=lab
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmdTimeout=30
OverTimeLimit=0
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
      mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
      # a running controller must read the new file
      if pgrep -x slurmctld >/dev/null; then scontrol reconfigure >/dev/null 2>&1 || true; fi
    else
      rm -f /etc/slurm/slurm.conf.new
    fi
  fi
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c "/usr/sbin/munged" \
    || { _slurm_fail "munged did not start; the Slurm tests will skip"; return; }
  pgrep -x slurmctld >/dev/null || slurmctld || { _slurm_fail "slurmctld did not start"; return; }
  pgrep -x slurmd >/dev/null || slurmd || { _slurm_fail "slurmd did not start"; return; }
  local deadline=$(( $(date +%s) + 60 )) state=""
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(sinfo -h -n "$host" -o '%t' 2>/dev/null | head -n 1)
    case "$state" in
      idle|mix|alloc) break ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 ;;
    esac
    sleep 0.5
  done
  case "$state" in
    idle|mix|alloc)
      export LAB_TEST_SLURM=1
      echo "slurm: node $host $state with $cpus CPUs ($(( $(date +%s) - started )) s)" ;;
    *) _slurm_fail "the node did not come up within 60 s (sinfo says '${state:-nothing}'); the Slurm tests will skip" ;;
  esac
}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || command -v sinfo >/dev/null 2>&1; then
  _slurm_start
else
  _slurm_fail "no Slurm (needs root and apt); the Slurm tests will skip"
fi
