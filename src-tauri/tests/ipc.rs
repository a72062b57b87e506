//! The window's IPC as the UI uses it (`invoke("rpc", {request})`), through Tauri's mock runtime,
//! to a real control socket served by a real `sandbox_desk::Service`: what the webview sends
//! deserialises into a `Request`, and a `Reply` or an `ActionError` (`{message}`) comes back.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use sandbox_core::paths::Paths;
use sandbox_core::setup::Installation;
use sandbox_core::ssh_config::Platform;
use sandbox_desk::control::{ControlClient, ControlServer};
use sandbox_desk::protocol::Reply;
use sandbox_desk::{Desktop, Service, ServiceConfig};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

/// A desktop that does nothing (no IDE, browser or notification in a test).
struct NoDesktop;

impl Desktop for NoDesktop {
    fn open_url(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn open_browser(&self, _: &str) {}
    fn find_executable(&self, _: &str) -> Option<PathBuf> {
        None
    }
    fn notify(&self, _: &str, _: &str) {}
    fn set_start_at_login(&self, _: bool) -> Result<(), sandbox_desk::desktop::AutostartError> {
        Ok(())
    }
    fn key_comment(&self) -> String {
        "test@laptop".into()
    }
}

/// Serves a fresh service on the control socket of a temporary home, as the tray process does.
fn serve(home: &std::path::Path) -> ControlClient {
    let paths = Paths::from_home(home);
    let socket = paths.control_socket();
    let service = Service::new(ServiceConfig {
        install: Installation {
            paths,
            binary: PathBuf::from("sandbox-forward"),
            platform: Platform::current(),
            prefer_keychain: false,
        },
        desktop: Arc::new(NoDesktop),
        agent_binary: None,
    });
    let server =
        tauri::async_runtime::block_on(ControlServer::bind(&socket)).expect("bind the control socket");
    tauri::async_runtime::spawn(server.run(service));
    ControlClient::new(socket)
}

/// A loopback port nothing listens on: probes of a sandbox there fail at once, offline.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn invoke(webview: &tauri::WebviewWindow<tauri::test::MockRuntime>, args: Value) -> Result<Value, Value> {
    command(webview, "rpc", args)
}

fn command(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<Value>().unwrap())
}

#[test]
fn rpc_carries_requests_to_the_tray_process_and_its_answers_back() {
    let home = tempfile::tempdir().unwrap();
    let client = serve(home.path());
    let app = sandbox_forward_app::builder(mock_builder(), client)
        .build(mock_context(noop_assets()))
        .expect("build the app");
    let webview = WebviewWindowBuilder::new(&app, sandbox_forward_app::MAIN_WINDOW, Default::default())
        .build()
        .unwrap();

    let server = format!("http://127.0.0.1:{}", closed_port());
    let reply = invoke(
        &webview,
        json!({"request": {
            "kind": "saveSandbox",
            "original": null,
            "settings": {"name": "staging", "server": server, "auth": {"mode": "none"}, "remoteFolder": ""},
        }}),
    )
    .unwrap_or_else(|e| panic!("saveSandbox failed: {e}"));
    let reply: Reply = serde_json::from_value(reply).expect("a Reply");
    let names: Vec<_> = reply.snapshot.sandboxes.iter().map(|s| s.settings.name.as_str()).collect();
    assert_eq!(names, ["staging"]);
    assert!(reply.notice.as_deref().is_some_and(|n| n.contains("staging")), "{:?}", reply.notice);

    // The snapshot the UI polls shows it too.
    let reply = invoke(&webview, json!({"request": {"kind": "snapshot"}})).unwrap();
    assert_eq!(reply["snapshot"]["sandboxes"][0]["settings"]["server"], json!(server));

    // A refused action rejects with the ActionError, `{message}`, as the UI expects.
    let error = invoke(
        &webview,
        json!({"request": {
            "kind": "saveSandbox",
            "original": null,
            "settings": {"name": "not a name!", "server": server, "auth": {"mode": "none"}, "remoteFolder": ""},
        }}),
    )
    .expect_err("a bad name is refused");
    let message = error["message"].as_str().unwrap_or_else(|| panic!("not an ActionError: {error}"));
    assert!(message.contains("invalid sandbox name"), "{message}");
    // Its code, beside the sentence, is what the UI branches on.
    assert_eq!(error["code"], json!("invalidInput"), "{error}");
    assert_eq!(error.as_object().unwrap().len(), 2, "{error}");
}

#[test]
fn without_a_tray_process_every_call_says_so() {
    let home = tempfile::tempdir().unwrap();
    let client = ControlClient::new(Paths::from_home(home.path()).control_socket());
    let app = sandbox_forward_app::builder(mock_builder(), client)
        .build(mock_context(noop_assets()))
        .expect("build the app");
    let webview = WebviewWindowBuilder::new(&app, sandbox_forward_app::MAIN_WINDOW, Default::default())
        .build()
        .unwrap();

    let error = invoke(&webview, json!({"request": {"kind": "snapshot"}})).expect_err("no tray process");
    let message = error["message"].as_str().unwrap_or_else(|| panic!("not an ActionError: {error}"));
    assert!(message.contains("tray process is not running"), "{message}");
    assert_eq!(error["code"], json!("trayNotRunning"), "{error}");

    // A request the protocol does not know is refused by the IPC layer before reaching anyone.
    let error = invoke(&webview, json!({"request": {"kind": "selfDestruct"}})).expect_err("unknown kind");
    assert!(error.as_str().is_some_and(|e| e.contains("selfDestruct")), "{error}");
}

/// A `sandbox-forward://add?…` link handed to the running app (a second launch's only argument,
/// as the single-instance plugin passes it to the deep-link plugin) becomes the Add form,
/// filled, for the window to take; a bad link, a sentence; `--add` (the tray's "Add sandbox…"),
/// an empty form. Nothing reaches the tray process: a link never saves or connects anything.
#[test]
fn a_link_or_add_from_a_second_launch_reaches_the_add_form() {
    use sandbox_desk::protocol::{AuthSettings, Intent};
    use tauri_plugin_deep_link::DeepLinkExt;

    let home = tempfile::tempdir().unwrap();
    let client = ControlClient::new(Paths::from_home(home.path()).control_socket());
    let mut context = mock_context(noop_assets());
    // As tauri.conf.json declares it (the plugin reads only the schemes configured).
    let conf: Value = serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
    context.config_mut().plugins.0.insert("deep-link".into(), conf["plugins"]["deep-link"].clone());
    let app = sandbox_forward_app::builder(mock_builder(), client)
        .plugin(tauri_plugin_deep_link::init())
        .build(context)
        .expect("build the app");
    let webview = WebviewWindowBuilder::new(&app, sandbox_forward_app::MAIN_WINDOW, Default::default())
        .build()
        .unwrap();
    sandbox_forward_app::receive_links(app.handle());
    let take = || -> Vec<Intent> {
        serde_json::from_value(command(&webview, "take_intents", json!({})).unwrap()).unwrap()
    };
    assert_eq!(take(), []);

    let link = "sandbox-forward://add?name=dev&server=sandboxes.example.com\
                &issuer=https%3A%2F%2Flogin.example.com&client_id=sandbox-forward";
    let argv = |arg: &str| vec!["sandbox-forward-app".to_owned(), arg.to_owned()];
    app.deep_link().handle_cli_arguments(argv(link).iter());
    sandbox_forward_app::on_second_launch(app.handle(), &argv(link));
    let intents = take();
    let [Intent::AddSandbox { settings: Some(settings), link: Some(_) }] = intents.as_slice() else {
        panic!("not one filled Add form: {intents:?}");
    };
    assert_eq!((settings.name.as_str(), settings.server.as_str()), ("dev", "https://sandboxes.example.com"));
    assert!(matches!(&settings.auth, AuthSettings::Oidc { client_id, .. } if client_id == "sandbox-forward"));
    assert_eq!(take(), [], "taken once");

    app.deep_link()
        .handle_cli_arguments(argv("sandbox-forward://add?name=dev&server=s.example.com&token=x").iter());
    assert!(matches!(take().as_slice(), [Intent::BadLink { message }] if message.contains("token")));

    sandbox_forward_app::on_second_launch(app.handle(), &argv("--add"));
    assert_eq!(take(), [Intent::AddSandbox { settings: None, link: None }]);
    // Another scheme's link is not ours to read.
    app.deep_link().handle_cli_arguments(argv("https://example.com/").iter());
    assert_eq!(take(), []);
}
