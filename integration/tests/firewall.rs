//! The firewall ruleset routerd builds is one the kernel's nftables accepts (checked with `nft -c` in a
//! namespace of its own, so nothing is applied anywhere).

use integration::tracker::Tracker;

#[test]
fn the_golden_ruleset_is_valid_nftables() {
    let tracker = Tracker::default();
    let name = format!("rdl{}x900-nftcheck", std::process::id());
    let netns = tracker.create_namespace(&name, false).expect("a namespace");
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../routerd/src/firewall/testdata");
    let checked: Vec<_> = ["ruleset.golden.nft", "lockdown.golden.nft"]
        .iter()
        .map(|file| {
            let path = format!("{testdata}/{file}");
            integration::command::run_unchecked(netns.command("nft").args(["-c", "-f", &path]))
        })
        .collect();
    let problems = tracker.teardown();
    for checked in checked {
        let checked = checked.expect("nft runs (Debian package nftables)");
        assert!(checked.success, "{}", checked.combined());
    }
    assert!(problems.is_empty(), "{problems:?}");
}
