//! The failing fields of one request, collected so that a single answer lists them all
//! (JSON Pointers into the body, or parameter and header names).

use herald::domain::TextProblem;

use crate::ApiError;

/// Collects every failing field of a request, in JSON Pointer form.
#[derive(Debug, Default)]
pub struct FieldErrors {
    errors: Vec<(String, String)>,
}

impl FieldErrors {
    /// One failing field.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push((field.into(), message.into()));
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The failures collected, as (field, message) pairs.
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.errors
    }

    /// Every rule a text broke, at `field`.
    pub fn add_text(&mut self, field: &str, problems: Vec<TextProblem>) {
        for problem in problems {
            self.add(field, problem.to_string());
        }
    }

    /// `Ok` when nothing failed; otherwise the 400 listing the failures.
    pub fn check(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidFields(self))
        }
    }
}
