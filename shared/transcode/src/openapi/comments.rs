//! The comments of the proto sources, from the descriptor set's source info (kept by the build),
//! for the descriptions of the OpenAPI document. Without source info every lookup is `None`.

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, EnumDescriptor, EnumValueDescriptor, FieldDescriptor, MessageDescriptor, MethodDescriptor,
    ServiceDescriptor,
};

/// Leading comments by file name and descriptor path.
#[derive(Debug, Default)]
pub(crate) struct Comments {
    by_file: HashMap<String, HashMap<Vec<i32>, String>>,
}

impl Comments {
    /// Collects the leading comments of every file of `pool`.
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let mut by_file = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else { continue };
            let comments: HashMap<Vec<i32>, String> = info
                .location
                .iter()
                .filter_map(|location| {
                    let text = clean(location.leading_comments.as_deref()?);
                    (!text.is_empty()).then(|| (location.path.clone(), text))
                })
                .collect();
            by_file.insert(file.name().to_owned(), comments);
        }
        Self { by_file }
    }

    fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.by_file.get(file)?.get(path).map(String::as_str)
    }

    /// The comment of a service.
    pub(crate) fn service(&self, service: &ServiceDescriptor) -> Option<&str> {
        self.get(service.parent_file().name(), service.path())
    }

    /// The comment of a method.
    pub(crate) fn method(&self, method: &MethodDescriptor) -> Option<&str> {
        self.get(method.parent_file().name(), method.path())
    }

    /// The comment of a message.
    pub(crate) fn message(&self, message: &MessageDescriptor) -> Option<&str> {
        self.get(message.parent_file().name(), message.path())
    }

    /// The comment of a field.
    pub(crate) fn field(&self, field: &FieldDescriptor) -> Option<&str> {
        self.get(field.parent_file().name(), field.path())
    }

    /// The comment of an enum.
    pub(crate) fn enumeration(&self, enumeration: &EnumDescriptor) -> Option<&str> {
        self.get(enumeration.parent_file().name(), enumeration.path())
    }

    /// The comment of an enum value.
    pub(crate) fn value(&self, value: &EnumValueDescriptor) -> Option<&str> {
        self.get(value.parent_file().name(), value.path())
    }
}

/// The comment without the space after `//` on each line, and without surrounding blank lines.
fn clean(comment: &str) -> String {
    let lines: Vec<&str> = comment.lines().map(str::trim).collect();
    lines.join("\n").trim().to_owned()
}

/// The first sentence of a comment (up to the first `. ` or the end of the first paragraph),
/// as an operation summary.
pub(crate) fn summary(comment: &str) -> String {
    let paragraph = comment.split("\n\n").next().unwrap_or(comment).replace('\n', " ");
    match paragraph.find(". ") {
        Some(at) => paragraph[..=at].to_owned(),
        None => paragraph,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_cleaned_and_summarised() {
        assert_eq!(clean(" Lists tasks.\n More text.\n"), "Lists tasks.\nMore text.");
        assert_eq!(summary("Lists tasks. Newest first.\n\nDetails."), "Lists tasks.");
        assert_eq!(summary("Replays events, then\nstreams them"), "Replays events, then streams them");
    }
}
