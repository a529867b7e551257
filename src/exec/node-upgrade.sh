# k8s-upgrade node script v1
#
# Runs on the host (the node job enters PID 1's namespaces) and follows the kubeadm upgrade
# procedure for one node: move the pkgs.k8s.io package repository to the target minor, install
# the pinned kubeadm, run `kubeadm upgrade apply` (first control-plane node) or `kubeadm upgrade
# node` (the others and workers), then the pinned kubelet and kubectl, daemon-reload and a
# kubelet restart. Every input comes from the environment the pod sets; nothing from the
# cluster is ever part of this text.
#
#   K8S_UPGRADE_VERSION  target version, X.Y.Z
#   K8S_UPGRADE_ROLE     control-plane | worker
#   K8S_UPGRADE_FIRST    true on the control-plane node that runs `kubeadm upgrade apply`
#   K8S_UPGRADE_NODE     the node's name (for the log only)
#
# K8S_UPGRADE_TEST_ROOT and K8S_UPGRADE_TEST_PATH exist for the project's own test of this
# script (a fake /etc and fake package tools); nothing sets them on a node.
set -euf
ETC="${K8S_UPGRADE_TEST_ROOT:-}/etc"
PATH="${K8S_UPGRADE_TEST_PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH DEBIAN_FRONTEND=noninteractive

say() { echo "k8s-upgrade: $*"; }
fail() { echo "k8s-upgrade: error: $*" >&2; exit 1; }

VERSION="${K8S_UPGRADE_VERSION:?K8S_UPGRADE_VERSION is not set}"
ROLE="${K8S_UPGRADE_ROLE:?K8S_UPGRADE_ROLE is not set}"
FIRST="${K8S_UPGRADE_FIRST:-false}"
case "$VERSION" in
  *[!0-9.]* | "" ) fail "target version '$VERSION' is not X.Y.Z" ;;
esac
MINOR="${VERSION%.*}"
case "$MINOR" in
  *.*) ;;
  *) fail "target version '$VERSION' is not X.Y.Z" ;;
esac
say "node ${K8S_UPGRADE_NODE:-?} ($ROLE) to v$VERSION"

if command -v apt-get >/dev/null 2>&1; then
  PM=apt
elif command -v dnf >/dev/null 2>&1; then
  PM=dnf
elif command -v yum >/dev/null 2>&1; then
  PM=yum
else
  fail "neither apt-get nor dnf nor yum on this host: give apply --node-script with this host's procedure"
fi
say "package manager: $PM"

# The community repositories have one repository per minor: point every file that names one
# at the target minor (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/change-package-repository/).
if [ "$PM" = apt ]; then
  REPO_FILES=$(grep -rl 'pkgs.k8s.io/core:/stable:/v1\.[0-9]*/deb' "$ETC/apt/sources.list.d" 2>/dev/null || true)
else
  REPO_FILES=$(grep -rl 'pkgs.k8s.io/core:/stable:/v1\.[0-9]*/rpm' "$ETC/yum.repos.d" 2>/dev/null || true)
fi
[ -n "$REPO_FILES" ] || fail "no pkgs.k8s.io repository found on this host (legacy apt.kubernetes.io/yum.kubernetes.io or a mirror?): move it to pkgs.k8s.io or give apply --node-script with this host's procedure"
for f in $REPO_FILES; do
  sed -i "s#pkgs.k8s.io/core:/stable:/v1\.[0-9]*/#pkgs.k8s.io/core:/stable:/v$MINOR/#g" "$f"
  say "repository in $f now at v$MINOR"
done

install_pinned() {
  if [ "$PM" = apt ]; then
    apt-mark unhold "$@" >/dev/null
    set -- $(for p in "$@"; do printf '%s=%s-* ' "$p" "$VERSION"; done)
    apt-get update -q
    apt-get install -y -q "$@"
    apt-mark hold $(for p in "$@"; do printf '%s ' "${p%%=*}"; done) >/dev/null
  else
    $PM install -y $(for p in "$@"; do printf '%s-%s-* ' "$p" "$VERSION"; done) --disableexcludes=kubernetes
  fi
}

install_pinned kubeadm
GOT=$(kubeadm version -o short)
[ "$GOT" = "v$VERSION" ] || fail "kubeadm reports $GOT after installing v$VERSION"
say "kubeadm $GOT installed"

if [ "$ROLE" = control-plane ] && [ "$FIRST" = true ]; then
  kubeadm upgrade plan "v$VERSION"
  kubeadm upgrade apply -y "v$VERSION"
else
  kubeadm upgrade node
fi

install_pinned kubelet kubectl
systemctl daemon-reload
systemctl restart kubelet
say "kubelet restarted at v$VERSION"
