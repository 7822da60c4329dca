//! The fleet catalogue and the emulators agree, and nothing a network client can reach from
//! the `decky` binary names the product.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use decnet_fleet::catalog::{Catalog, Transport};
use decnet_services::{persona::Persona, protocols};

#[test]
fn every_emulator_binds_exactly_the_catalogue_ports() {
    let catalog = Catalog::builtin();
    let persona = Persona::from_pairs(&[("NODE_NAME", "h"), ("HOSTNAME", "h")]);
    for slug in protocols::AVAILABLE {
        let service = catalog
            .get(slug)
            .unwrap_or_else(|| panic!("{slug} is not in the catalogue"));
        let mut declared: Vec<u16> = service
            .ports()
            .iter()
            .filter(|p| p.transport == Transport::Tcp)
            .map(|p| p.number)
            .collect();
        let mut bound = protocols::lookup(slug, &persona)
            .unwrap()
            .default_ports()
            .to_vec();
        declared.sort_unstable();
        bound.sort_unstable();
        assert_eq!(
            declared, bound,
            "{slug}: catalogue and emulator disagree on TCP ports"
        );
    }
}

#[test]
fn decky_cli_output_is_neutral() {
    let bin = decnet_e2e::workspace_bin("decky");
    for args in [
        &["--help"][..],
        &[],
        &["serve"],
        &["serve", "nope"],
        &["bogus", "x"],
    ] {
        let out = Command::new(&bin).args(args).env_clear().output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .to_ascii_lowercase();
        for word in ["decnet", "honeypot", "decoy", "fake"] {
            assert!(!text.contains(word), "{args:?} prints {word:?}: {text}");
        }
    }
}
