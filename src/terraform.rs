//! What the Terraform layer (the provider block, the resource, the data sources) shares:
//! tf-provider values read on their attribute (unknown and null kept, an invalid value an
//! error on the attribute), and the provider's errors added to Terraform's diagnostics.
//! Everything below this layer speaks [`Error`] and plain Rust values.

use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::error::{Error, Result};

/// The error for an invalid value of `attribute`, from what is wrong with it.
pub(crate) fn invalid(attribute: &'static str) -> impl Fn(String) -> Error {
    move |detail| Error::Invalid { attribute, detail }
}

/// A known value, or the error that says it is not known at apply time.
pub(crate) fn known<'a, T>(value: &'a Value<T>, attribute: &'static str) -> Result<&'a T> {
    value.as_ref_option().ok_or_else(|| Error::Invalid {
        attribute,
        detail: format!("`{attribute}` has no known value at apply time."),
    })
}

/// Parses `text` with `parse`: unknown and null stay so, an invalid value is an error on
/// `attribute`.
pub(crate) fn parsed<T>(
    text: &Value<String>,
    attribute: &'static str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Value<T>> {
    match text {
        Value::Value(text) => parse(text).map(Value::Value).map_err(invalid(attribute)),
        Value::Null => Ok(Value::Null),
        Value::Unknown => Ok(Value::Unknown),
    }
}

/// An error as Terraform shows it: its summary, its cause and hint, on its attribute when it
/// has one.
pub(crate) trait Diagnose {
    /// Adds it to `diags` as one error diagnostic.
    fn report(&self, diags: &mut Diagnostics);

    /// Adds it to `diags` as a warning: something went wrong that does not stop the
    /// operation.
    fn warn(&self, diags: &mut Diagnostics);
}

impl Diagnose for Error {
    fn report(&self, diags: &mut Diagnostics) {
        let summary = self.to_string();
        match self.attribute() {
            Some(attribute) => diags.error(summary, self.detail(), path(attribute)),
            None => diags.root_error(summary, self.detail()),
        }
    }

    fn warn(&self, diags: &mut Diagnostics) {
        let summary = self.to_string();
        match self.attribute() {
            Some(attribute) => diags.warning(summary, self.detail(), path(attribute)),
            None => diags.root_warning(summary, self.detail()),
        }
    }
}

/// The path of `attribute`, whose `.` steps into a block (`timeouts.create`).
fn path(attribute: &'static str) -> AttributePath {
    let mut steps = attribute.split('.');
    let mut path = AttributePath::new(steps.next().unwrap_or_default());
    for step in steps {
        path = path.attribute(step);
    }
    path
}

/// A block of at most one (`NestedBlock::Optional`: a list of none or one on the wire) read
/// and written as one value, unknown while Terraform does not know it (a `dynamic` block whose
/// `for_each` is not known yet, as in validation). tf-provider's `serde_as_vec` reads only a
/// known list, and writes an unknown block as an empty one.
pub(crate) mod optional_block {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tf_provider::value::Value;

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        block: &Value<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match block {
            Value::Unknown => Value::<Vec<T>>::Unknown.serialize(serializer),
            Value::Null => Vec::<T>::new().serialize(serializer),
            Value::Value(block) => [block].serialize(serializer),
        }
    }

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Value<T>, D::Error> {
        match Value::<Vec<Value<T>>>::deserialize(deserializer)? {
            Value::Unknown => Ok(Value::Unknown),
            Value::Null => Ok(Value::Null),
            Value::Value(blocks) => {
                let mut blocks = blocks.into_iter();
                match (blocks.next(), blocks.next()) {
                    (None, _) => Ok(Value::Null),
                    (Some(block), None) => Ok(block),
                    (Some(_), Some(_)) => {
                        Err(D::Error::custom("a block of at most one holds several"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_summary_cause_hint_and_attribute() {
        let mut diags = Diagnostics::default();
        Error::RepositoryNotFound {
            repository: "app".into(),
            registry_id: Some("123456789012".into()),
            host: None,
            templates: crate::error::TemplateLookup::NotAsked,
        }
        .report(&mut diags);
        let diag = &diags.errors[0];
        assert_eq!(diag.summary, "ECR repository app does not exist");
        assert!(diag.detail.contains("no repository named `app`"));
        assert!(diag.detail.contains("aws_ecr_repository"));
        assert_eq!(diag.attribute, AttributePath::new("repository"));
    }

    #[test]
    fn values_are_parsed_on_their_attribute_unknown_and_null_kept() {
        let number = |text: &str| text.parse::<u32>().map_err(|e| e.to_string());
        assert_eq!(
            parsed(&Value::Value("7".into()), "latest", number).unwrap(),
            Value::Value(7)
        );
        assert_eq!(
            parsed(&Value::Unknown, "latest", number).unwrap(),
            Value::Unknown
        );
        assert_eq!(parsed(&Value::Null, "latest", number).unwrap(), Value::Null);
        let err = parsed(&Value::Value("x".into()), "latest", number).unwrap_err();
        assert_eq!(err.attribute(), Some("latest"));
        assert!(known(&Value::<String>::Unknown, "tag").is_err());
    }
}
