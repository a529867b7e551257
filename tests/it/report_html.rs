//! The HTML report in a real browser: `plan -o html` and `apply --save-html` pages from the
//! simulator, opened from the file system by headless Chromium, which must log no console
//! message (the page has no script, so any message is a refused resource, a policy violation or
//! an error) and must show the path picture (its version boxes' colour is found in the
//! screenshot). Each check is shown to fail on a page broken on purpose. Screenshots are kept
//! under `target/test-artifacts/` and their paths printed.
//!
//! Tests that need Chromium skip with a printed reason when it is absent, and fail instead under
//! `K8S_UPGRADE_REQUIRE_CHROMIUM=1` (CI). Chromium is kept offline: every name resolves to
//! nothing, every request goes to a closed port on 127.0.0.1, and its background services are
//! switched off.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{command, stderr, stdout};

/// Fill of the path picture's version boxes (`VERSION_BOX_FILL` in `src/cli/render/html.rs`);
/// no other element of the page has it.
const BOX_FILL: [u8; 3] = [0x1e, 0x5b, 0xb8];
/// Pixels of that colour that prove the picture is on screen: most of one 136×60 box (a legend
/// swatch or a stray pixel is far fewer; two boxes are far more).
const MIN_BOX_PIXELS: usize = 4000;

/// The Chromium binary, or `None` after saying why the test is skipped; panics under
/// `K8S_UPGRADE_REQUIRE_CHROMIUM=1`.
fn chromium(test: &str) -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let ok = Command::new(name)
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(PathBuf::from(name));
        }
    }
    if std::env::var("K8S_UPGRADE_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
        panic!("{test}: Chromium is required (K8S_UPGRADE_REQUIRE_CHROMIUM=1) but `chromium --version` failed");
    }
    eprintln!(
        "skipping {test}: Chromium is not installed (apt-get install chromium; set K8S_UPGRADE_REQUIRE_CHROMIUM=1 to fail instead)"
    );
    None
}

/// `target/test-artifacts`, beside the binary under test.
fn artifacts() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_k8s-upgrade"));
    let dir = bin.parent().and_then(Path::parent).expect("target dir").join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the browser made of a page.
struct Shot {
    png: PathBuf,
    /// Console messages the page caused.
    console: Vec<String>,
}

/// Opens `html` in headless Chromium at 1400×1000 and screenshots it to `<artifacts>/<name>.png`.
fn open(browser: &Path, html: &Path, name: &str) -> Shot {
    let png = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let profile = scratch(&format!("profile-{name}"));
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-breakpad",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-pings",
            "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
            // Nothing leaves this machine: names resolve to nothing, requests go to a closed port.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=http://127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish the screenshot of {url} within 180s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed on {url}: {status}\n{log}");
    assert!(png.exists(), "chromium wrote no screenshot of {url}\n{log}");
    // Console messages are logged as `INFO:CONSOLE:<line>] "..."` (older builds: `CONSOLE(<line>)`).
    let console =
        log.lines().filter(|l| l.contains(":CONSOLE:") || l.contains(":CONSOLE(")).map(str::to_string).collect();
    println!("screenshot of {name}: {}", png.display());
    Shot { png, console }
}

/// Pixels of the version boxes' fill in a screenshot, and the horizontal span they cover.
fn box_pixels(png: &Path) -> (usize, u32) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "screenshot is {:?}", info.color_type);
    let (mut count, mut min_x, mut max_x) = (0, u32::MAX, 0);
    for y in 0..info.height as usize {
        let row = &buf[y * info.line_size..][..info.width as usize * channels];
        for (x, px) in row.chunks_exact(channels).enumerate() {
            if px[..3].iter().zip(BOX_FILL).all(|(a, b)| a.abs_diff(b) <= 6) {
                count += 1;
                min_x = min_x.min(x as u32);
                max_x = max_x.max(x as u32);
            }
        }
    }
    (count, if count == 0 { 0 } else { max_x - min_x })
}

/// Whether the page rendered cleanly with its picture on screen (at least two version boxes).
fn check_clean_with_picture(shot: &Shot) -> Result<(), String> {
    if !shot.console.is_empty() {
        return Err(format!("console messages for {}:\n{}", shot.png.display(), shot.console.join("\n")));
    }
    let (pixels, span) = box_pixels(&shot.png);
    if pixels < MIN_BOX_PIXELS {
        return Err(format!("{}: only {pixels} pixels of the version boxes", shot.png.display()));
    }
    // Two boxes a hop apart: the picture is drawn, not a lone swatch.
    if span < 300 {
        return Err(format!("{}: the version boxes span only {span} pixels", shot.png.display()));
    }
    Ok(())
}

fn assert_clean_with_picture(shot: &Shot) {
    if let Err(e) = check_clean_with_picture(shot) {
        panic!("{e}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    // Kept beside the screenshots, so a reader of the test output can open the page itself.
    std::fs::write(artifacts().join(name), text).unwrap();
    path
}

/// `plan -o html` on the simulator: one document on stdout, exit 3 for the plan's blockers.
fn plan_page(scenario: &str, to: &str) -> String {
    let o = command().args(["plan", &format!("--simulate={scenario}"), "--to", to, "-o", "html"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let html = stdout(&o);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"), "one document");
    assert_eq!(html.matches("<html").count(), 1);
    html
}

#[test]
fn plan_pages_render_in_chromium_with_no_console_message_and_the_picture_on_screen() {
    let Some(browser) = chromium("plan_pages_render_in_chromium") else { return };
    let dir = scratch("plan");
    // The demo cluster's next minor, with removed APIs and add-ons before the hop.
    let html = plan_page("demo", "1.25");
    assert!(html.contains("kubeadm 1.24.17 → 1.25.16"));
    assert!(html.contains("✗ 5 blockers"));
    for step in ["add-on cert-manager", "Helm release", "migrate 2 CronJob", "node roll"] {
        assert!(html.contains(step), "the picture draws {step}");
    }
    let shot = open(&browser, &write(&dir, "report-html-plan-demo.html", &html), "report-html-plan-demo");
    assert_clean_with_picture(&shot);
    // The blocked cluster: its drain blocker has no step and bites at the node roll.
    let html = plan_page("blocked", "1.31");
    assert!(html.contains("no step fixes it"));
    assert!(html.contains("at the node rolls"));
    let shot = open(&browser, &write(&dir, "report-html-plan-blocked.html", &html), "report-html-plan-blocked");
    assert_clean_with_picture(&shot);
}

#[test]
fn hostile_names_in_manifests_stay_text_in_the_browser() {
    let Some(browser) = chromium("hostile_names_in_manifests_stay_text") else { return };
    let dir = scratch("hostile");
    std::fs::write(
        dir.join("jobs.yaml"),
        "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: \"x\\\"><script>alert(1)</script><img src=x onerror=alert(2)>\"\n  namespace: \"a&b'c\\u001b[31m\"\n",
    )
    .unwrap();
    let o = command()
        .current_dir(&dir)
        .args([
            "plan",
            "--distro",
            "kubeadm",
            "--from",
            "1.24.17",
            "--to",
            "1.25",
            "--manifests",
            "jobs.yaml",
            "-o",
            "html",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let html = stdout(&o);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"), "{html}");
    assert!(html.contains("a&amp;b&#39;c\\u{1b}[31m"));
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains('\u{1b}'));
    // Had any of it become markup, the policy would refuse it and the console would say so.
    let shot = open(&browser, &write(&dir, "report-html-hostile.html", &html), "report-html-hostile");
    assert_clean_with_picture(&shot);
}

#[test]
fn apply_reports_render_in_chromium_for_a_finished_and_a_stopped_run() {
    let Some(browser) = chromium("apply_reports_render_in_chromium") else { return };
    let dir = scratch("apply");
    // A whole run.
    let report = dir.join("run.html");
    let o = command()
        .args(["apply", "--simulate", "--to", "1.25", "--yes", "--delete-emptydir-data", "--force"])
        .arg("--journal")
        .arg(dir.join("run.journal.json"))
        .arg("--save-html")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("HTML report written to {}", report.display())));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("✓ Finished · exit 0 (done)"));
    assert!(html.contains("✓ The plan&#39;s 5 blockers were each fixed by a step this run completed"));
    assert_eq!(html.matches("<span class=\"st done\">done</span>").count(), 8, "every step done");
    // Every node of both rolls on the timeline, each ending done.
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\""));
    for node in ["cp-1", "pool-a-1", "pool-b-3"] {
        assert!(html.contains(&format!("<title>{node}: done at ")), "{node} on the timeline");
        assert!(html.contains(&format!("<title>{node}: draining, ")), "{node}'s drain on the timeline");
    }
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.journal.json")).unwrap()).unwrap();
    assert!(journal["steps"][0]["started"].as_str().is_some_and(|t| t.ends_with('Z')), "steps are timed");
    assert!(!dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    let shot = open(&browser, &write(&dir, "report-html-apply.html", &html), "report-html-apply");
    assert_clean_with_picture(&shot);

    // A run that stops at a node it may not drain: the report says where and why.
    let report = dir.join("stopped.html");
    let o = command()
        .args(["apply", "--simulate", "--to", "1.25", "--yes"])
        .arg("--journal")
        .arg(dir.join("stopped.journal.json"))
        .arg("--save-html")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("✗ Stopped · exit 3 (stopped at a blocker or gate)"));
    assert!(html.contains("uses emptyDir (pass --delete-emptydir-data to lose its data)"));
    assert!(html.contains("<span class=\"st failed\">failed</span>"));
    let shot = open(&browser, &write(&dir, "report-html-apply-stopped.html", &html), "report-html-apply-stopped");
    assert_clean_with_picture(&shot);
}

/// The two checks fail on pages broken on purpose: a script (refused by the page's policy, and
/// an error besides), and the picture hidden.
#[test]
fn the_browser_checks_catch_a_console_error_and_a_hidden_picture() {
    let Some(browser) = chromium("the_browser_checks_catch_failures") else { return };
    let dir = scratch("broken");
    let html = plan_page("demo", "1.25");
    let with_error = html.replacen("<main>", "<main><script>throw new Error('injected')</script>", 1);
    let shot = open(&browser, &write(&dir, "report-html-broken-script.html", &with_error), "report-html-broken-script");
    assert!(!shot.console.is_empty(), "the injected script left no console message");
    assert!(
        shot.console.iter().any(|l| l.contains("Content Security Policy") || l.contains("injected")),
        "{:?}",
        shot.console
    );
    let e = check_clean_with_picture(&shot).expect_err("the console check passed a page with an error");
    assert!(e.contains("console messages"), "{e}");

    let hidden = html.replacen("id=\"path-picture\"", "id=\"path-picture\" visibility=\"hidden\"", 1);
    assert_ne!(hidden, html);
    let shot = open(&browser, &write(&dir, "report-html-broken-hidden.html", &hidden), "report-html-broken-hidden");
    assert!(shot.console.is_empty(), "{:?}", shot.console);
    let (pixels, _) = box_pixels(&shot.png);
    assert!(pixels < MIN_BOX_PIXELS / 10, "{pixels} box pixels with the picture hidden");
    let e = check_clean_with_picture(&shot).expect_err("the picture check passed a page without the picture");
    assert!(e.contains("pixels of the version boxes"), "{e}");
}

/// A report that cannot be written is said, and the run's exit code stays the run's; a plan's
/// `--save-html` is what was asked for, so failing it fails the command.
#[test]
fn a_report_that_cannot_be_written_is_reported_without_changing_the_exit_code() {
    let dir = scratch("unwritable");
    let missing = dir.join("no-such-dir").join("run.html");
    let o = command()
        .args(["apply", "--simulate", "--to", "1.25", "--yes", "--delete-emptydir-data", "--force"])
        .arg("--journal")
        .arg(dir.join("run.journal.json"))
        .arg("--save-html")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("warning: --save-html {}:", missing.display()))
            && err.contains("the run's exit code is unchanged"),
        "{err}"
    );
    assert!(!missing.exists());

    let o = command().args(["plan", "--simulate", "--to", "1.25", "--save-html"]).arg(&missing).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("--save-html {}", missing.display())) && err.contains("directory exists"), "{err}");
    // With a writable path the table still goes to stdout and the page to the file.
    let page = dir.join("plan.html");
    let o = command().args(["plan", "--simulate", "--to", "1.25", "--save-html"]).arg(&page).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("kubeadm: 1.24.17 → 1.25.16"));
    assert!(std::fs::read_to_string(&page).unwrap().contains("id=\"path-picture\""));
}

/// Ctrl-C ends a run at a safe point, and the report of that run is written all the same.
#[test]
fn an_interrupted_run_still_writes_its_report() {
    let dir = scratch("interrupted");
    let (events, report) = (dir.join("events.jsonl"), dir.join("run.html"));
    let mut child = command()
        .args(["apply", "--simulate", "--to", "1.25", "--yes", "--delete-emptydir-data", "--force"])
        .args(["--time-scale", "0.3"])
        .arg("--journal")
        .arg(dir.join("run.journal.json"))
        .arg("--events")
        .arg(&events)
        .arg("--save-html")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first node has been cordoned, the run is under way.
    let t = Instant::now();
    while !std::fs::read_to_string(&events).unwrap_or_default().contains("\"phase\":\"cordoned\"") {
        assert!(t.elapsed() < Duration::from_secs(120), "no node was cordoned");
        assert!(child.try_wait().unwrap().is_none(), "apply ended before a node was cordoned");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}\n{}", stdout(&o), stderr(&o));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Stopped · exit 130 (interrupted)"), "{}", stderr(&o));
    assert!(html.contains("stopped on request"));
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\""));
    assert!(html.contains("<span class=\"st done\">done</span>"), "the steps before the stop are done");
}
