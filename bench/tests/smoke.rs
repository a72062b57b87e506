//! The CI smoke of the benchmark: tiny sizes, every contender whose tool is installed, every
//! byte checked. Ours and direct TCP always run. Needs `cargo build --workspace --bins` first.

use std::path::PathBuf;

use sandbox_bench::run::{run, Options};

#[test]
fn every_contender_moves_correct_bytes() {
    let bin_dir = sandbox_test_support::bin_dir();
    // scripts/bench.sh installs websocat here.
    let tools: Vec<PathBuf> = bin_dir.parent().map(|t| t.join("tools/bin")).into_iter().collect();
    let report = run(Options { smoke: true, bin_dir, tool_dirs: tools, reps: 1, only: Vec::new() })
        .expect("smoke run");
    for note in &report.notes {
        println!("note: {note}");
    }
    let names: Vec<_> = report.rows.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"direct TCP") && names.contains(&"ours"), "{names:?}");
    let ours = report.rows.iter().find(|r| r.name == "ours").unwrap();
    assert!(ours.up.is_some() && ours.down.is_some() && ours.lat1.is_some() && ours.setup.is_some());
    assert_eq!(ours.hold.as_ref().map(|h| h.failures), Some(0));
    // v2 (the default) resumes after every reset and outage; v1 cannot and says how it broke.
    assert!(ours.recovery_reset.is_some() && ours.recovery_outage.is_some(), "{:?}", ours.errors);
    let v1 = report.rows.iter().find(|r| r.name == "ours (v1)").expect("the v1 row");
    assert!(v1.up.is_some() && v1.lat1.is_some(), "{:?}", v1.errors);
    assert!(v1.recovery_broke.is_some(), "v1 survived a reset: {:?}", v1.recovery_reset);
    println!("{}", report.markdown());
}
