//! Leases: `ValidateLeaseSpec`.

use super::field::Errors;
use serde_json::Value;

/// `ValidateLeaseSpec`.
pub fn validate_lease(lease: &Value, errs: &mut Errors) {
    let spec = &lease["spec"];
    if let Some(d) = spec.get("leaseDurationSeconds").filter(|d| !d.is_null()) {
        if d.as_i64().is_none_or(|d| d <= 0) {
            errs.invalid("spec.leaseDurationSeconds", d, "must be greater than 0");
        }
    }
    errs.non_negative("spec.leaseTransitions", spec.get("leaseTransitions"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_duration_must_be_positive() {
        let mut errs = Errors::default();
        validate_lease(
            &json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}}),
            &mut errs,
        );
        assert_eq!(errs.0.len(), 2);
    }
}
