//! Contract 0.2's permits in a scenario: which permit each outcome
//! carries, as the host hands a permitted attempt's outcome back.

use std::cell::{Cell, RefCell};

use super::scenario::PermitRef;

/// The permits a plugin granted in a scenario, and the one whose attempt
/// has no outcome yet (the next outcome's, unless a step names another).
#[derive(Default)]
pub(super) struct Permits {
    granted: RefCell<Vec<u64>>,
    open: Cell<Option<u64>>,
}

impl Permits {
    pub(super) fn grant(&self, permit: Option<u64>) {
        self.open.set(permit);
        if let Some(p) = permit {
            self.granted.borrow_mut().push(p);
        }
    }

    /// The permit an outcome carries: the one the step names, else the
    /// open one; either way the open one is used up.
    pub(super) fn outcome(&self, named: Option<&PermitRef>) -> Option<u64> {
        let open = self.open.take();
        match named {
            None => open,
            Some(PermitRef::Id(p)) => Some(*p),
            Some(PermitRef::Named(n)) => match n.as_str() {
                "last" => self.granted.borrow().last().copied(),
                "first" => self.granted.borrow().first().copied(),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_uses_up_the_open_permit_or_names_another() {
        let p = Permits::default();
        assert_eq!(p.outcome(None), None, "nothing granted yet");
        p.grant(Some(7));
        p.grant(Some(9));
        assert_eq!(p.outcome(None), Some(9), "the last grant's attempt");
        assert_eq!(p.outcome(None), None, "used up");
        p.grant(Some(11));
        assert_eq!(p.outcome(Some(&PermitRef::Named("none".into()))), None);
        assert_eq!(p.outcome(None), None, "`none` used the open one up too");
        let first = PermitRef::Named("first".into());
        assert_eq!(p.outcome(Some(&first)), Some(7));
        assert_eq!(p.outcome(Some(&PermitRef::Named("last".into()))), Some(11));
        assert_eq!(p.outcome(Some(&PermitRef::Id(3))), Some(3));
        p.grant(None);
        assert_eq!(p.outcome(None), None, "an allow without a permit");
    }
}
