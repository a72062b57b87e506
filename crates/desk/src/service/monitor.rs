//! What runs by itself: probes of every sandbox, the comparison of live forward numbers, the
//! notifications they cause, and [`supervise`], which restarts a background task that panicked.

use std::sync::Weak;
use std::time::Duration;

use sandbox_core::name::SandboxName;

use super::{Inner, Service};
use crate::protocol::{Health, LogLevel};
use crate::status;

/// How often every sandbox is probed.
const PROBE_EVERY: Duration = Duration::from_secs(15);
/// How often live forward numbers are compared, to bump the generation and notice failures.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a background task that panicked waits before it starts again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

impl Service {
    pub(super) async fn probe_all(&self) {
        for name in self.inner.install.profiles().names() {
            self.probe(&name).await;
        }
    }

    pub(super) async fn probe(&self, name: &SandboxName) {
        let new = status::probe(&self.inner.install, name).await;
        let mut state = self.lock();
        let old = state.statuses.insert(name.clone(), new.clone());
        let changed = old.as_ref().is_none_or(|o| {
            (o.health, &o.detail, o.key_registered) != (new.health, &new.detail, new.key_registered)
        });
        if !changed {
            return;
        }
        let expired =
            new.health == Health::NeedsSignIn && old.is_some_and(|o| o.health != Health::NeedsSignIn);
        let notify = state.settings.preferences.notifications;
        drop(state);
        if expired && notify {
            self.notify(&format!("Sign in to {name}"), &new.detail);
        }
        if matches!(new.health, Health::Unreachable | Health::NeedsSignIn) {
            self.log(LogLevel::Warn, Some(name), new.detail);
        } else {
            self.bump();
        }
    }

    /// Bumps the generation when live numbers moved, and reports new forward failures.
    pub(super) fn watch_forwards(&self) {
        let live = self.inner.forwards.status();
        let mut state = self.lock();
        if live == state.last_live {
            return;
        }
        let failures: Vec<(String, u16, String)> = live
            .iter()
            .filter_map(|l| {
                let err = l.last_error.as_ref()?;
                let before =
                    state.last_live.iter().find(|p| p.sandbox == l.sandbox && p.remote_port == l.remote_port);
                (before.and_then(|p| p.last_error.as_ref()) != Some(err))
                    .then(|| (l.sandbox.clone(), l.remote_port, err.clone()))
            })
            .collect();
        state.last_live = live;
        let notify = state.settings.preferences.notifications;
        drop(state);
        for (sandbox, port, err) in failures {
            let name = SandboxName::new(&sandbox).ok();
            self.log(LogLevel::Error, name.as_ref(), format!("forward to :{port}: {err}"));
            if notify {
                self.notify(&format!("{sandbox}: forward to :{port} failed"), &err);
            }
        }
        self.bump();
    }

    /// A desktop notification that can neither fail nor panic its caller (a background loop):
    /// the desktop's notifier runs out of descriptors or loses its D-Bus, the app goes on.
    pub(super) fn notify(&self, title: &str, body: &str) {
        let desktop = &self.inner.desktop;
        let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| desktop.notify(title, body)));
        if let Err(panic) = shown {
            tracing::warn!("notification {title:?} not shown: {}", panic_message(&*panic));
        }
    }
}

/// The probe and watch loop: probes every sandbox every [`PROBE_EVERY`], compares live forward
/// numbers every [`WATCH_EVERY`]; returns when the service is gone.
pub(super) async fn monitor(weak: Weak<Inner>) {
    let mut probe = tokio::time::interval(PROBE_EVERY);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    probe.tick().await;
    loop {
        tokio::select! {
            _ = probe.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                Service { inner }.probe_all().await;
            }
            _ = watch.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                Service { inner }.watch_forwards();
            }
        }
    }
}

/// Runs a background task for as long as it wants to run: a panic is handed to `panicked`
/// (which logs it, or answers false when nobody is left to serve) and the task starts again a
/// second later, so a bug or a failing desktop service cannot silently stop live status for the
/// rest of the session.
pub fn supervise<F, Fut, P>(task: F, panicked: P) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
    P: Fn(String) -> bool + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(task()).await {
                Err(e) if e.is_panic() => {
                    if !panicked(panic_message(&*e.into_panic())) {
                        return;
                    }
                    tokio::time::sleep(RESTART_AFTER).await;
                }
                // Ended (the service is gone) or cancelled (the runtime is shutting down).
                _ => return,
            }
        }
    })
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::protocol::Request;
    use crate::service::testing::{closed_port, service, service_with, settings, Recorder};

    /// A task that panics is started again (after the panic is reported); one that ends is not.
    #[tokio::test]
    async fn a_background_task_that_panics_is_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (r, p) = (runs.clone(), reports.clone());
        let supervisor = supervise(
            move || {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("zbus: Too many open files");
                    }
                }
            },
            move |why| {
                p.lock().unwrap().push(why);
                true
            },
        );
        supervisor.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(*reports.lock().unwrap(), ["zbus: Too many open files"; 2]);
    }

    /// A supervisor whose reporter says nobody is left stops after the first panic.
    #[tokio::test]
    async fn a_supervisor_stops_when_nobody_is_left() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        supervise(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { panic!("boom") }
            },
            |_| false,
        )
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_notification_that_panics_is_not_fatal() {
        let (_home, app, desktop) =
            service_with(Recorder { notify_panics: true, ..Recorder::default() }, None);
        app.notify("title", "body");
        app.notify("again", "body");
        assert_eq!(*desktop.notes.lock().unwrap(), ["title: body", "again: body"]);
    }

    /// An unreachable sandbox is one warning in Activity, not one per probe.
    #[tokio::test]
    async fn an_unreachable_sandbox_is_logged_once() {
        let (_home, app) = service(Recorder::default());
        let server = format!("http://127.0.0.1:{}", closed_port());
        app.handle(Request::SaveSandbox { original: None, settings: settings("dev", &server) })
            .await
            .unwrap();
        let warnings =
            |app: &Service| app.snapshot().log.iter().filter(|l| l.level == LogLevel::Warn).count();
        assert_eq!(warnings(&app), 1, "{:?}", app.snapshot().log);
        let snap = app.snapshot();
        assert_eq!(snap.sandboxes[0].status.health, Health::Unreachable);
        app.probe_all().await;
        app.probe_all().await;
        assert_eq!(warnings(&app), 1);
    }

    /// With no forward running, the watch tick changes nothing a face would redraw for.
    #[tokio::test]
    async fn watching_unchanged_forwards_keeps_the_generation() {
        let (_home, app) = service(Recorder::default());
        let before = app.snapshot().generation;
        app.watch_forwards();
        app.watch_forwards();
        assert_eq!(app.snapshot().generation, before);
    }
}
