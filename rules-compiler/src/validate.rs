//! Validate: turn loaded documents into the checked [`crate::model::Model`], collecting
//! every diagnostic (file, line, column, object, field path) before failing.
//!
//! Must not decide what traffic is allowed; it only decides what input is acceptable.

use crate::diag::Rejected;
use crate::load::Input;
use crate::Loaded;

/// Validates policy and inventory inputs into a model.
pub fn validate(policies: &[Input], inventory: &[Input]) -> Result<Loaded, Rejected> {
    let _ = (policies, inventory);
    todo!("validate::validate")
}
