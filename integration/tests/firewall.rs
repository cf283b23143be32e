//! The firewall ruleset routerd builds is one the kernel's nftables accepts (checked with `nft -c` in a
//! namespace of its own, so nothing is applied anywhere).

use integration::tracker::Tracker;

#[test]
fn the_golden_ruleset_is_valid_nftables() {
    let tracker = Tracker::default();
    let name = format!("rdl{}x900-nftcheck", std::process::id());
    let netns = tracker.create_namespace(&name, false).expect("a namespace");
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/../routerd/src/firewall/testdata/ruleset.golden.nft");
    let checked = integration::command::run_unchecked(netns.command("nft").args(["-c", "-f", golden]));
    let problems = tracker.teardown();
    let checked = checked.expect("nft runs (Debian package nftables)");
    assert!(checked.success, "{}", checked.combined());
    assert!(problems.is_empty(), "{problems:?}");
}
