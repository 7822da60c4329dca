//! The INI loader and planner on arbitrary bytes: errors are fine, panics are not.
#![no_main]

use decnet_fleet::{config, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = config::load(data) {
        let options = plan::PlanOptions {
            seed: Some(1),
            ..plan::PlanOptions::default()
        };
        if let Ok(planned) = plan::plan(spec, &options) {
            let _ = decnet_fleet::compose::to_yaml(&decnet_fleet::compose::compose(&planned));
        }
    }
});
