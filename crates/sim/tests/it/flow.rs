//! The simulation over time (issue #5, items 6 to 8): product events with delays, reordering,
//! retries and dead letters; scheduled triggers on the virtual clock; web triggers; queues;
//! upgrades with the admin's consent; the runtime RoA report. Same seed, same trace.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use signoff_sim::Realm;
use signoff_sim::clock::Millis;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::{Flow, FlowConfig, InstallSpec, Simulation};
use signoff_sim::host::{InvocationError, SimConfig, WebRequest};
use signoff_sim::report::RoaReport;
use wasmtime::component::Component;

use super::host::{guest, loaded};

const APP: &str = "ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000f10e";
const LEAKY: &str = "ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000001ea";

/// hello with every kind of asynchronous module.
const V1: &str = r#"
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000f10e
  runtime: {name: wasm32-wasip2}
modules:
  function:
    - {key: main, handler: hello}
  trigger:
    - key: pages
      function: main
      events: [avi:confluence:created:page, avi:confluence:updated:page]
      filter: {ignoreSelf: true}
  scheduledTrigger:
    - {key: tick, function: main, interval: fiveMinute}
  webtrigger:
    - {key: hook, function: main}
    - key: ping
      function: main
      response:
        type: static
        outputs:
          - {key: ok, statusCode: 202, body: '{"accepted":true}'}
  consumer:
    - {key: worker, queue: work, function: main}
permissions:
  scopes: [read:confluence-content.all]
"#;

const LEAKY_MANIFEST: &str = r#"
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000001ea
  runtime: {name: wasm32-wasip2}
modules:
  function:
    - {key: main, handler: leaky}
  trigger:
    - {key: pages, function: main, events: [avi:confluence:created:page, avi:confluence:updated:page]}
permissions:
  external:
    fetch:
      backend:
        - {address: https://stats.example.com, category: analytics, inScopeEUD: false}
"#;

const SITE: &str = "acme.atlassian.net";

fn leaky() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    C.get_or_init(|| loaded().runtime.compile(&guest("leaky")).unwrap())
}

fn sim(seed: u64) -> Simulation {
    sim_with(seed, V1)
}

fn sim_with(seed: u64, manifest: &str) -> Simulation {
    let mut config = SimConfig::forge();
    config.seed = seed;
    let mut s = Simulation::new(loaded().runtime.clone(), config, FlowConfig::forge());
    deploy(&mut s, manifest);
    install(&mut s, "acme", APP);
    s
}

fn deploy(s: &mut Simulation, manifest: &str) -> signoff_sim::flow::Deployed {
    s.deploy(
        "manifest.yml",
        manifest,
        &loaded().hello_component,
        &BTreeMap::new(),
    )
    .unwrap()
}

fn install(s: &mut Simulation, id: &str, app: &str) {
    s.install(InstallSpec {
        id: id.into(),
        app: app.into(),
        site: SITE.into(),
        realm: Realm::Eu,
        environment: "production".into(),
        admin: AdminSwitches::default(),
    })
    .unwrap();
}

fn stored(s: &Simulation, installation: &str, key: &str) -> Option<serde_json::Value> {
    s.platform()
        .inspect(installation)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn deliveries(s: &Simulation, handler: &str) -> Vec<(u64, u32, bool)> {
    s.trace()
        .iter()
        .filter_map(|e| match &e.what {
            Flow::Delivery {
                id,
                attempt,
                outcome,
                handler: h,
                ..
            } if *h == handler => Some((*id, *attempt, outcome.is_ok())),
            _ => None,
        })
        .collect()
}

#[test]
fn page_events_reach_subscribers_late_and_failures_are_retried_then_dead_lettered() {
    let mut s = sim(1);
    let p = s
        .create_page(SITE, "acc-alice", "ENG", "Plan", "<p>v1</p>")
        .unwrap();
    assert_eq!(stored(&s, "acme", "last-event"), None, "not delivered yet");
    s.run_for(5 * Millis::MINUTE);
    let event = stored(&s, "acme", "last-event").expect("delivered within the delay");
    assert_eq!(event["eventType"], "avi:confluence:created:page");
    assert_eq!(event["atlassianId"], "acc-alice");
    assert_eq!(event["content"]["id"], p.id.as_str());
    assert_eq!(event["content"]["version"]["number"], 1);

    // Two storage failures: the third attempt succeeds.
    s.inject_storage_errors("acme", 2).unwrap();
    s.edit_page(SITE, "acc-bob", &p.id, None, "<p>v2</p>")
        .unwrap();
    s.run_for(Millis::DAY);
    let attempts: Vec<(u32, bool)> = deliveries(&s, "event")[1..]
        .iter()
        .map(|(_, a, ok)| (*a, *ok))
        .collect();
    assert_eq!(attempts, [(1, false), (2, false), (3, true)]);
    assert_eq!(
        stored(&s, "acme", "last-event").unwrap()["content"]["version"]["number"],
        2
    );

    // Always failing: 1 + 4 attempts, then a dead letter.
    s.inject_timeouts("acme", 100).unwrap();
    s.edit_page(SITE, "acc-bob", &p.id, None, "<p>v3</p>")
        .unwrap();
    s.run_for(Millis::DAY);
    let last = s.trace().iter().rev().find_map(|e| match &e.what {
        Flow::DeadLetter { attempts, .. } => Some(*attempts),
        _ => None,
    });
    assert_eq!(last, Some(5));
    assert_eq!(s.stats().dead_letters, 1);
    let timeouts = s
        .trace()
        .iter()
        .filter(|e| {
            matches!(
                &e.what,
                Flow::Delivery {
                    outcome: Err(InvocationError::Timeout { .. }),
                    handler: "event",
                    ..
                }
            )
        })
        .count();
    assert_eq!(timeouts, 5);
}

#[test]
fn same_seed_same_trace_and_another_seed_reorders() {
    let run = |seed: u64| {
        let mut s = sim(seed);
        s.duplicate_deliveries("acme", 1).unwrap();
        for i in 0..8 {
            let title = format!("Page {i}");
            s.create_page(SITE, "acc-alice", "ENG", &title, "<p>x</p>")
                .unwrap();
        }
        s.push("acme", "work", r#"{"n":1}"#).unwrap();
        s.run_for(Millis::HOUR);
        let order: Vec<u64> = deliveries(&s, "event").iter().map(|d| d.0).collect();
        (serde_json::to_string(s.trace()).unwrap(), order)
    };
    let (a, order_a) = run(7);
    let (b, _) = run(7);
    let (c, order_c) = run(8);
    assert_eq!(a, b, "same seed, byte-identical trace");
    assert_ne!(a, c);
    assert_ne!(order_a, order_c, "another seed delivers in another order");
    let mut sorted = order_a.clone();
    sorted.sort();
    assert_ne!(order_a, sorted, "events arrive out of order");
    // The first event was duplicated: it arrives twice, under one delivery id.
    assert_eq!(order_a.len(), 8 + 1);
    assert_eq!(order_a.iter().filter(|id| **id == 1).count(), 2);
}

#[test]
fn an_apps_own_edits_are_events_and_ignore_self_filters_them() {
    let mut s = sim(2);
    // Another installation on the same site, without ignoreSelf, hears the app's edits.
    let other = V1
        .replace("00000000f10e", "00000000f10f")
        .replace("filter: {ignoreSelf: true}", "filter: {ignoreSelf: false}");
    deploy(&mut s, &other);
    install(
        &mut s,
        "acme-2",
        "ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000f10f",
    );
    let r = s
        .call_resolver("acme", None, Some("acc-alice"), "product", r#""Spec""#)
        .unwrap()
        .unwrap();
    assert!(r.contains("\"version\":3"), "{r}");
    s.run_for(Millis::HOUR);
    let events: Vec<(&str, usize)> = s
        .trace()
        .iter()
        .filter_map(|e| match &e.what {
            Flow::ProductEvent {
                event, deliveries, ..
            } => Some((*event, *deliveries)),
            _ => None,
        })
        .collect();
    // create, update, content state: each heard by acme-2 only.
    assert_eq!(
        events,
        [
            ("avi:confluence:created:page", 1),
            ("avi:confluence:updated:page", 1),
            ("avi:confluence:updated:page", 1)
        ]
    );
    let heard = stored(&s, "acme-2", "last-event").unwrap();
    assert!(
        heard["atlassianId"]
            .as_str()
            .unwrap()
            .starts_with("app:ari:")
    );
    assert_eq!(stored(&s, "acme", "last-event"), None);
}

#[test]
fn scheduled_triggers_fire_on_the_virtual_clock_and_are_not_retried() {
    let mut s = sim(3);
    s.run_for(Millis::HOUR);
    let fired = deliveries(&s, "schedule");
    assert_eq!(fired.len(), 12, "every five minutes for an hour");
    assert_eq!(
        stored(&s, "acme", "last-schedule"),
        Some(serde_json::json!("tick"))
    );
    s.inject_storage_errors("acme", 1).unwrap();
    s.run_for(5 * Millis::MINUTE);
    let fired = deliveries(&s, "schedule");
    assert_eq!(fired.len(), 13);
    assert!(!fired[12].2, "failed");
    assert_eq!(s.stats().retries, 0, "scheduled triggers are not retried");
    // A simulated week of five-minute triggers (the bench runs a year).
    s.run_for(7 * Millis::DAY);
    assert_eq!(deliveries(&s, "schedule").len(), 13 + 7 * 24 * 12);
}

/// Scheduled triggers may fire twice (platform.md §5): by a fault, the next firings of an
/// installation run a second time shortly after, with the same delivery id; with
/// `schedule_duplicates_ppm`, a seeded share of all firings do. Neither moves the schedule.
#[test]
fn scheduled_triggers_may_fire_twice() {
    let times = |s: &Simulation| -> Vec<(u64, Millis)> {
        s.trace()
            .iter()
            .filter_map(|e| match &e.what {
                Flow::Delivery { id, handler, .. } if *handler == "schedule" => Some((*id, e.at)),
                _ => None,
            })
            .collect()
    };
    let mut s = sim(5);
    let start = s.now();
    s.duplicate_firings("acme", 2).unwrap();
    assert!(s.duplicate_firings("nobody", 1).is_err());
    s.run_for(Millis::HOUR);
    let fired = times(&s);
    assert_eq!(fired.len(), 14, "{fired:?}");
    let firsts: Vec<_> = fired.iter().map(|(_, at)| *at).collect();
    // Every five minutes still; the two duplicates within 30 s of their firing, same id.
    for k in 1..=12 {
        assert!(
            firsts.contains(&start.plus(k * 5 * Millis::MINUTE)),
            "{fired:?}"
        );
    }
    let mut ids: Vec<u64> = fired.iter().map(|(id, _)| *id).collect();
    ids.dedup();
    let twice: Vec<_> = fired
        .iter()
        .filter(|(id, _)| fired.iter().filter(|(j, _)| j == id).count() == 2)
        .collect();
    assert_eq!(twice.len(), 4, "{fired:?}");
    assert_eq!(twice[0].0, twice[1].0);
    let lag = twice[1].1.0 - twice[0].1.0;
    assert!(
        (1..=signoff_sim::flow::DUPLICATE_FIRING_MS).contains(&lag),
        "{lag}"
    );
    assert_eq!(twice[0].1, start.plus(5 * Millis::MINUTE));

    // A share of all firings, from the seed: a day of five-minute firings, about half twice.
    let run = |seed| {
        let mut config = SimConfig::forge();
        config.seed = seed;
        let flow = FlowConfig {
            schedule_duplicates_ppm: 500_000,
            ..FlowConfig::forge()
        };
        let mut s = Simulation::new(loaded().runtime.clone(), config, flow);
        deploy(&mut s, V1);
        install(&mut s, "acme", APP);
        s.run_for(Millis::DAY);
        times(&s)
    };
    let a = run(6);
    let extra = a.len() - 288;
    assert!((100..=190).contains(&extra), "{extra} duplicates of 288");
    assert_eq!(a, run(6), "the same seed, the same duplicates");
}

#[test]
fn web_triggers_answer_static_or_dynamic() {
    let mut s = sim(4);
    let req = WebRequest {
        method: "POST".into(),
        path: "/hook".into(),
        ..WebRequest::default()
    };
    let r = s.web_trigger("acme", "hook", req.clone()).unwrap();
    assert_eq!(r.status_code, 200);
    assert_eq!(r.body, r#"{"method":"POST","path":"/hook"}"#);
    // hello answers no outputKey: a static web trigger never passes the app's bytes on.
    let r = s.web_trigger("acme", "ping", req.clone()).unwrap();
    assert_eq!(r.status_code, 500);
    assert!(!r.body.contains("/hook"));
    assert!(matches!(
        s.web_trigger("acme", "nope", req),
        Err(signoff_sim::flow::FlowError::NoModule { .. })
    ));
}

#[test]
fn queue_payloads_reach_the_consumer() {
    let mut s = sim(5);
    s.call_resolver("acme", None, Some("acc-alice"), "push", r#"{"job":42}"#)
        .unwrap()
        .unwrap();
    s.run_for(Millis::MINUTE);
    assert_eq!(
        stored(&s, "acme", "queue.work"),
        Some(serde_json::json!({"job": 42}))
    );
    // Unknown queues are accepted and reach nobody.
    s.push("acme", "nobody", "{}").unwrap();
    assert!(matches!(
        s.trace().last().unwrap().what,
        Flow::QueuePush { deliveries: 0, .. }
    ));
}

#[test]
fn minor_updates_apply_at_once_and_major_ones_wait_for_consent() {
    // Eligible to start with: no dynamic web trigger.
    let v1 = V1.replace(
        "- {key: hook, function: main}",
        "- {key: hook, function: main, response: {type: static, outputs: [{key: ok}]}}",
    );
    let mut s = sim_with(6, &v1);
    install(&mut s, "globex", APP);
    // Minor: a new scheduled trigger.
    let v2 = v1.replace(
        "  webtrigger:",
        "    - {key: hourly, function: main, interval: hour}\n  webtrigger:",
    );
    let d = deploy(&mut s, &v2);
    assert_eq!(d.update.as_str(), "minor");
    assert_eq!(d.upgraded, ["acme", "globex"]);
    assert_eq!(s.running("acme"), Some((2, None)));

    // Major: a new scope. Both wait; the old version keeps running.
    let v3 = v2.replace(
        "scopes: [read:confluence-content.all]",
        "scopes: [read:confluence-content.all, write:confluence-content]",
    );
    let d = deploy(&mut s, &v3);
    assert_eq!(d.update.as_str(), "major");
    assert_eq!(d.reasons, ["SCOPE_ADDED"]);
    assert_eq!(d.awaiting_consent, ["acme", "globex"]);
    assert_eq!(s.running("acme"), Some((2, Some(3))));
    s.consent("acme").unwrap();
    assert_eq!(s.running("acme"), Some((3, None)));
    assert_eq!(s.running("globex"), Some((2, Some(3))));
    assert!(s.consent("acme").is_err());

    // Losing eligibility is reported at upgrade time.
    let v4 = v3.replace(
        "permissions:",
        "permissions:\n  external:\n    fetch:\n      backend: [https://api.example.com]",
    );
    let d = deploy(&mut s, &v4);
    assert_eq!((d.eligible_before, d.eligible_after), (Some(true), false));
    assert!(d.reasons.contains(&"ELIGIBILITY_LOST".to_string()));
    let report = RoaReport::of(&s, APP).unwrap();
    assert_eq!(report.eligibility_lost.len(), 1);
    assert!(
        report
            .to_text()
            .contains("version 4 (major) lost RoA eligibility")
    );
}

/// Lifecycle events: `avi:forge:installed:app` at install, `avi:forge:upgraded:app` after a
/// major upgrade (once its admin consented), never after a minor one; each to the listening
/// triggers, with the installation, the app's version and the site's context.
#[test]
fn lifecycle_events_reach_their_listeners() {
    let v1 = V1.replace(
        "events: [avi:confluence:created:page, avi:confluence:updated:page]",
        "events: [avi:forge:installed:app, avi:forge:upgraded:app]",
    );
    let mut s = sim_with(12, &v1);
    s.run_for(Millis::HOUR);
    let lifecycle = |s: &Simulation| -> Vec<String> {
        s.trace()
            .iter()
            .filter_map(|e| match &e.what {
                Flow::Delivery {
                    subject, outcome, ..
                } if subject.starts_with("avi:forge:") => {
                    assert!(outcome.is_ok(), "{e:?}");
                    Some(subject.clone())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(lifecycle(&s), ["avi:forge:installed:app"]);
    let last = |s: &Simulation| stored(s, "acme", "last-event").unwrap();
    assert_eq!(last(&s)["app"]["version"], "1");
    // Minor: no event.
    let v2 = v1.replace(
        "  webtrigger:",
        "    - {key: hourly, function: main, interval: hour}\n  webtrigger:",
    );
    assert_eq!(deploy(&mut s, &v2).update.as_str(), "minor");
    s.run_for(Millis::HOUR);
    assert_eq!(lifecycle(&s).len(), 1);
    // Major: the event comes after the consent, from the new version.
    let v3 = v2.replace(
        "scopes: [read:confluence-content.all]",
        "scopes: [read:confluence-content.all, write:confluence-content]",
    );
    assert_eq!(deploy(&mut s, &v3).update.as_str(), "major");
    s.run_for(Millis::HOUR);
    assert_eq!(lifecycle(&s).len(), 1, "nothing before the consent");
    s.consent("acme").unwrap();
    s.run_for(Millis::HOUR);
    assert_eq!(
        lifecycle(&s),
        ["avi:forge:installed:app", "avi:forge:upgraded:app"]
    );
    let event = last(&s);
    assert_eq!(
        (&event["id"], &event["app"]["version"]),
        (&serde_json::json!("acme"), &serde_json::json!("3"))
    );
    assert!(
        event["context"]
            .as_str()
            .unwrap()
            .starts_with("ari:cloud:confluence::site/"),
        "{event}"
    );
}

#[test]
fn the_report_catches_page_content_sent_to_an_undeclared_host() {
    let mut s = sim(9);
    s.deploy("leaky.yml", LEAKY_MANIFEST, leaky(), &BTreeMap::new())
        .unwrap();
    install(&mut s, "acme-leaky", LEAKY);
    s.platform_mut().add_endpoint(
        "stats.example.com",
        std::sync::Arc::new(|_| signoff_sim::host::EndpointResponse {
            status: 204,
            headers: vec![],
            body: String::new(),
        }),
    );
    let p = s
        .create_page(
            SITE,
            "acc-alice",
            "HR",
            "Salaries",
            "<p>alice earns 1000</p>",
        )
        .unwrap();
    s.edit_page(SITE, "acc-alice", &p.id, None, "<p>alice earns 2000</p>")
        .unwrap();
    s.edit_page(SITE, "acc-bob", &p.id, None, "<p>bob earns 3000</p>")
        .unwrap();
    s.run_for(Millis::HOUR);

    let r = RoaReport::of(&s, LEAKY).unwrap();
    assert!(r.static_verdict.eligible, "the manifest looks fine");
    assert!(!r.observed.eligible);
    assert_eq!(
        r.observed.reasons,
        ["page content sent to undeclared host collector.example.net (blocked 3 times)"]
    );
    let text = r.to_text();
    assert!(
        text.contains("observed: NOT eligible — page content sent to undeclared host collector.example.net (blocked 3 times)"),
        "{text}"
    );
    insta::assert_snapshot!("leaky_report", text);
    insta::assert_json_snapshot!("leaky_report_json", r);

    // The well-behaved app on the same site is observed eligible.
    let ok = RoaReport::of(&s, APP).unwrap();
    assert!(ok.observed.eligible, "{:?}", ok.observed);
    assert!(ok.to_text().contains("observed: runs on Atlassian"));
}

/// `SimConfig::threads` only moves instantiation to workers: with 1, 2 or 4 threads the same
/// seed gives the same bytes in every output (the simulation's trace, the invocations'
/// trace, the egress ledger, logs, analytics, stored data), through events, retries after
/// injected timeouts and storage errors, duplicates, queues, schedules, an app's own page
/// edits, resolvers that read randomness and the clock, and a minor upgrade mid-run.
#[test]
fn the_number_of_threads_changes_no_output() {
    let run = |threads: usize| {
        let mut config = SimConfig::forge();
        config.seed = 5;
        config.threads = threads;
        let mut s = Simulation::new(loaded().runtime.clone(), config, FlowConfig::forge());
        deploy(&mut s, V1);
        s.deploy("leaky.yml", LEAKY_MANIFEST, leaky(), &BTreeMap::new())
            .unwrap();
        install(&mut s, "acme", APP);
        install(&mut s, "acme-leaky", LEAKY);
        s.install(InstallSpec {
            id: "globex".into(),
            app: APP.into(),
            site: "globex.atlassian.net".into(),
            realm: Realm::De,
            environment: "production".into(),
            admin: AdminSwitches::default(),
        })
        .unwrap();
        s.duplicate_deliveries("acme", 2).unwrap();
        s.inject_timeouts("globex", 3).unwrap();
        s.inject_storage_errors("acme", 4).unwrap();
        let mut outputs = Vec::new();
        for i in 0..12 {
            let site = if i % 3 == 0 {
                "globex.atlassian.net"
            } else {
                SITE
            };
            let title = format!("Page {i}");
            let body = format!("<p>the body of page number {i}</p>");
            let page = s
                .create_page(site, "acc-alice", "ENG", &title, &body)
                .unwrap();
            s.push("acme", "work", &format!(r#"{{"n":{i}}}"#)).unwrap();
            let installation = if i % 3 == 0 { "globex" } else { "acme" };
            let calls = [
                ("random", "{}"),
                ("context", "{}"),
                ("touch", page.id.as_str()),
                ("push", r#"{"from":"resolver"}"#),
            ];
            for (name, payload) in calls {
                let out = s.call_resolver(installation, None, Some("acc-bob"), name, payload);
                outputs.push(format!("{out:?}"));
            }
            s.run_for(7 * Millis::MINUTE);
        }
        // A minor upgrade while deliveries are queued.
        deploy(&mut s, &V1.replace("fiveMinute", "hour"));
        s.run_for(Millis::DAY);
        let p = s.platform();
        let stored: Vec<_> = ["acme", "acme-leaky", "globex"]
            .iter()
            .map(|i| p.inspect(i).unwrap())
            .collect();
        (
            serde_json::to_string(s.trace()).unwrap(),
            serde_json::to_string(p.trace()).unwrap(),
            serde_json::to_string(p.ledger()).unwrap(),
            serde_json::to_string(p.logs()).unwrap(),
            serde_json::to_string(p.analytics()).unwrap(),
            serde_json::to_string(&stored).unwrap(),
            outputs,
            s.stats(),
        )
    };
    let one = run(1);
    assert!(one.7.invocations > 150, "{:?}", one.7);
    assert!(one.7.retries > 0, "{:?}", one.7);
    for threads in [2, 4] {
        let other = run(threads);
        assert!(other == one, "{threads} threads changed an output");
    }
}
