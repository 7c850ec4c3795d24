//! Rule and action counters in `/metrics` (Prometheus), read from the running rules at
//! each scrape: `roost_rule_{matched,passed,no_result,failed}_total{rule}` and
//! `roost_rule_action_{success,failed,dropped,retried}_total{rule,action}`,
//! `roost_rule_action_queue_depth{rule,action}`; `action` is `INDEX:TYPE` (`0:postgres`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::engine::{Engine, Rule};

/// Register with the `/metrics` registry.
pub struct RulesCollector(pub Arc<Engine>);

impl std::fmt::Debug for RulesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RulesCollector")
    }
}

type RuleCounter = fn(&Rule) -> &AtomicU64;
type ActionCounter = fn(&crate::action::ActionMetrics) -> &AtomicU64;

impl Collector for RulesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let rules = self.0.rules();
        let per_rule: [(&str, &str, RuleCounter); 4] = [
            ("rule_matched", "Inputs a rule's FROM matched", |r| &r.metrics.matched),
            ("rule_passed", "Inputs a rule's WHERE passed (outputs made)", |r| &r.metrics.passed),
            ("rule_no_result", "Inputs a rule's WHERE did not pass", |r| &r.metrics.no_result),
            ("rule_failed", "Rule evaluations that failed", |r| &r.metrics.failed),
        ];
        for (name, help, get) in per_rule {
            let mut fam = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            for r in rules.iter() {
                ConstCounter::new(get(r).load(Relaxed))
                    .encode(fam.encode_family(&[("rule", r.config.id.as_str())])?)?;
            }
        }
        let per_action: [(&str, &str, ActionCounter); 4] = [
            ("rule_action_success", "Rule outputs an action wrote", |m| &m.success),
            ("rule_action_failed", "Rule outputs dropped after every retry failed", |m| &m.failed),
            ("rule_action_dropped", "Rule outputs dropped because the action's queue was full", |m| &m.dropped),
            ("rule_action_retried", "Failed action write attempts", |m| &m.retried),
        ];
        for (name, help, get) in per_action {
            let mut fam = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            for r in rules.iter() {
                for (i, a) in r.actions.iter().enumerate() {
                    let action = format!("{i}:{}", a.kind);
                    let labels = [("rule", r.config.id.as_str()), ("action", action.as_str())];
                    ConstCounter::new(get(&a.metrics).load(Relaxed)).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        let g = ConstGauge::new(0i64);
        let mut fam = encoder.encode_descriptor(
            "rule_action_queue_depth",
            "Rule outputs waiting for an action",
            None,
            g.metric_type(),
        )?;
        for r in rules.iter() {
            for (i, a) in r.actions.iter().enumerate() {
                let action = format!("{i}:{}", a.kind);
                let labels = [("rule", r.config.id.as_str()), ("action", action.as_str())];
                ConstGauge::new(a.queue_depth() as i64).encode(fam.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
