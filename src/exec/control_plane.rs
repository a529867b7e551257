//! Control-plane hops: every control-plane node in turn (the first gets `kubeadm upgrade
//! apply`, the others `kubeadm upgrade node`), each Ready at the target with its apiserver
//! static pod at the target and `/readyz` ok, handed back and gated before the next; or, with
//! no control-plane nodes (EKS, GKE, AKS), the provider's upgrade and a wait for the apiserver
//! to report the target minor. A control-plane node is never skipped: a drain the operator
//! gives up on stops the hop.

use tokio::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::node::{NodeRole, Rolled, reached};
use super::upgrader::{Action, Role, Started};
use super::{Answer, Event, ExecError, Executor, Question};
use crate::k8s::{image, node as nodes};
use crate::plan::Step;
use crate::version::Version;

impl Executor<'_> {
    pub(super) async fn control_plane(
        &self,
        step: &Step,
        from: &Version,
        to: &Version,
    ) -> Result<Option<String>, ExecError> {
        let started = self.journal.lock().await.nodes.keys().any(|k| k.starts_with(&format!("{}/", step.order)));
        if !started && self.operator.attended() && !self.options.dry_run {
            match self.operator.ask(Question::ControlPlaneHop { target: to.clone() }).await {
                Answer::Yes => {}
                Answer::Cancelled => {
                    return Err(ExecError::Interrupted("stopped on request before the control-plane hop".into()));
                }
                _ => return Err(ExecError::Declined("the operator declined the control-plane hop".into())),
            }
        }
        if !started {
            self.check_kubelet_skew(to).await?;
            self.check_prerequisites(from, to).await?;
            self.check_removals(step.order, from, to).await?;
        }
        let mut cps: Vec<k8s_openapi::api::core::v1::Node> =
            self.nodes().await?.into_iter().filter(nodes::is_control_plane).collect();
        cps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if cps.is_empty() {
            return self.managed_control_plane(step.order, from, to).await;
        }
        let names: Vec<String> = cps.iter().map(|n| nodes::name(n).to_string()).collect();
        self.emit(Event::BatchStart { label: "control plane".into(), nodes: names.clone() });
        for (i, name) in names.iter().enumerate() {
            if self.cancel.is_stop_requested() {
                return Err(ExecError::Interrupted(format!("stopped on request before control-plane node {name}")));
            }
            self.window_check(name)?;
            match self.roll_one(step.order, name, to, NodeRole::ControlPlane { first: i == 0 }).await? {
                Rolled::Upgraded => {}
                Rolled::Skipped(why) => {
                    return Err(ExecError::Blocked(format!(
                        "control-plane node {name} was not upgraded ({why}); the hop to {to} stops here, because the control plane must move as one. Fix the drain, `kubectl uncordon {name}`, remove the label {}, and run apply again",
                        super::drain::LABEL_QUARANTINED
                    )));
                }
            }
            self.finish_node(step.order, name).await?;
            self.emit(Event::BatchStatus { status: "health gates".into() });
            self.gate(&format!("control-plane node {name}")).await?;
        }
        Ok(None)
    }

    /// Stops before a hop that would leave a worker's kubelet further behind than the skew policy
    /// allows: a node skipped in an earlier roll (quarantined) has not moved on with the rest.
    async fn check_kubelet_skew(&self, to: &Version) -> Result<(), ExecError> {
        let distro = self.journal.lock().await.distro.clone();
        let Some(rule) = self.options.catalog.distro(&distro).map(|d| d.nodes.clone()) else { return Ok(()) };
        let quarantined: Vec<String> =
            self.journal.lock().await.quarantined().into_iter().map(str::to_string).collect();
        let behind: Vec<String> = self
            .nodes()
            .await?
            .iter()
            .filter(|n| !nodes::is_control_plane(n))
            .filter_map(|n| {
                let k = nodes::kubelet_version(n)?;
                (!crate::graph::skew_ok(&rule, to.minor_version(), k.minor_version())).then(|| {
                    let name = nodes::name(n);
                    format!(
                        "{name} (kubelet {k}{})",
                        if quarantined.iter().any(|q| q == name) { ", skipped earlier in this run" } else { "" }
                    )
                })
            })
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        Err(ExecError::Blocked(format!(
            "the hop to {} would leave kubelets further behind than {distro} allows: {}. Upgrade those nodes (uncordon a skipped one and remove its {} label, then run apply again), or drain and remove them, before the control plane moves on",
            to.minor_version(),
            behind.join(", "),
            super::drain::LABEL_QUARANTINED
        )))
    }

    /// A control plane the provider runs: start its upgrade, then wait for the apiserver.
    async fn managed_control_plane(
        &self,
        step: usize,
        from: &Version,
        target: &Version,
    ) -> Result<Option<String>, ExecError> {
        if let super::upgrader::Upgrader::Provider(m) = &self.options.upgrader {
            if self.options.dry_run {
                let argv = m.control_plane_argv(target);
                self.say(format!(
                    "dry run: would run {}",
                    argv.iter().map(|a| super::command::quote(a)).collect::<Vec<_>>().join(" ")
                ));
            } else {
                self.provider_control_plane(step, m, target).await?;
            }
            return self.wait_apiserver(from, target, self.options.node_timeout.max(m.upgrade_timeout)).await;
        }
        let action = Action {
            subject: "control-plane".into(),
            role: Role::ManagedControlPlane,
            target: target.to_string(),
            from: Some(from.to_string()),
            workload: None,
        };
        if !self.options.dry_run {
            match self.run_upgrader(&self.options.upgrader, &action).await {
                Ok(Started::OperatorAction(text)) => self.say(text),
                Ok(Started::Performed) => {}
                Err(e) => return Err(ExecError::Blocked(format!("the control-plane upgrade failed: {e}"))),
            }
        }
        self.wait_apiserver(from, target, self.options.node_timeout).await
    }

    /// Waits for the apiserver to report the target minor.
    async fn wait_apiserver(
        &self,
        from: &Version,
        target: &Version,
        timeout: std::time::Duration,
    ) -> Result<Option<String>, ExecError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(v) = self.client.apiserver_version().await
                && let Ok(seen) = v.git_version.parse::<Version>()
                && reached(&seen, target, Some(from), self.options.any_patch)
            {
                if seen.without_suffix().core() != target.without_suffix().core() {
                    self.say(format!(
                        "the control plane reports {seen} (the plan said {target}: the provider chose the patch)"
                    ));
                }
                return Ok(None);
            }
            if self.options.dry_run {
                return Ok(Some("dry run: the managed control plane was not upgraded".into()));
            }
            if Instant::now() > deadline {
                return Err(ExecError::Blocked(format!(
                    "the control plane did not report {} within {}",
                    target.minor_version(),
                    super::command::humanize(timeout)
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll) => {}
                _ = self.cancel.abort_requested() => {
                    return Err(ExecError::Interrupted("stopped while waiting for the managed control plane".into()));
                }
            }
        }
    }

    /// The node's kube-apiserver mirror pod runs the target (when the node has one: k3s and
    /// RKE2 embed the apiserver) and the apiserver answers `/readyz`.
    pub(super) async fn control_plane_ready(&self, node: &str, target: &Version) -> bool {
        let pods: Vec<Pod> = if self.cache.is_stale(super::cache::Kind::Pods) {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), "kube-system");
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            let Ok(list) = api.list(&lp).await else { return false };
            list.items
        } else {
            self.cache.pods_on(node).iter().map(|p| Pod::clone(p)).collect()
        };
        let apiserver_ok = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
            .filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("kube-apiserver")))
            .all(|p| {
                p.spec.as_ref().is_some_and(|s| {
                    s.containers.iter().all(|c| {
                        let (_, tag) = image::split_image(c.image.as_deref().unwrap_or_default());
                        tag.trim_start_matches('v')
                            .parse::<Version>()
                            .is_ok_and(|v| reached(&v, target, None, self.options.any_patch))
                    })
                })
            });
        if !apiserver_ok {
            return false;
        }
        let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else { return false };
        self.client.request_text(req).await.is_ok()
    }
}
