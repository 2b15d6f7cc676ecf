//! Fuzzes the manifest entry point: any bytes must give a report or a typed error, never a
//! panic; verdicts must agree with findings; a manifest compared with itself is no change;
//! and whenever the fast YAML scanner accepts a text, it must build saphyr-parser's tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = roa_check::check("fuzz.yml", data) {
        let errors = report
            .findings
            .iter()
            .any(|f| f.severity == roa_check::Severity::Error);
        assert_eq!(report.eligible, !errors);
        let same = roa_check::diff("a", data, "b", data).expect("it loaded once");
        assert_eq!(same.update, roa_check::Update::None);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if signoff_yaml::fast_path_accepts(text) {
            let budget = signoff_yaml::Budget::default();
            let fast = signoff_yaml::parse_str(text, budget);
            let general = signoff_yaml::parse_str_general(text, budget);
            // NaN is not equal to itself; compare the rendering instead.
            assert_eq!(format!("{fast:?}"), format!("{general:?}"));
        }
    }
});
