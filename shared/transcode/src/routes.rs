//! Routes: every `google.api.http` rule (and additional binding) of the methods of the `prfix.`
//! services, checked once at start-up, and finding the route of a request.

use std::collections::HashMap;

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

use crate::fields::{self, FieldPathError};
use crate::template::{PathTemplate, TemplateError};

/// The option that carries a method's HTTP rule.
const HTTP_EXTENSION: &str = "google.api.http";
/// Only services of packages starting with this get routes.
const PACKAGE_PREFIX: &str = "prfix.";
/// The HTTP rule's pattern fields and the methods they stand for.
const PATTERNS: &[(&str, Method)] = &[
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("patch", Method::PATCH),
];

/// Why the routes could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The descriptor set does not decode.
    #[error("descriptor set does not decode: {0}")]
    Descriptors(String),
    /// The pool does not know the `google.api.http` extension.
    #[error("the descriptor pool has no `google.api.http` extension")]
    NoHttpExtension,
    /// A rule's path template does not parse.
    #[error("{method}: {source}")]
    Template {
        /// The method (`package.Service.Method`).
        method: String,
        /// What is wrong with the template.
        source: TemplateError,
    },
    /// A template variable, `body` or `response_body` names a field the message does not have.
    #[error("{method}: the {place} names `{field}`, which is not a field of {message}")]
    UnknownField {
        /// The method.
        method: String,
        /// `path template`, `body` or `response_body`.
        place: &'static str,
        /// The field path as written.
        field: String,
        /// The message it was looked up in.
        message: String,
    },
    /// A template variable names a field that a path segment cannot set.
    #[error("{method}: path variable `{field}` cannot be bound: {reason}")]
    BadVariable {
        /// The method.
        method: String,
        /// The field path as written.
        field: String,
        /// Why.
        reason: String,
    },
    /// The rule itself is malformed or cannot be served.
    #[error("{method}: bad http rule: {reason}")]
    BadRule {
        /// The method.
        method: String,
        /// Why.
        reason: String,
    },
    /// Two rules match the same requests.
    #[error("{http_method} {template} is bound twice: by {first} and by {second}")]
    Duplicate {
        /// The HTTP method.
        http_method: String,
        /// The second template.
        template: String,
        /// The method bound first.
        first: String,
        /// The method bound second.
        second: String,
    },
}

/// Where the request message comes from besides the path and the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: the fields come from the path and the query.
    None,
    /// `body: "*"`: the body is the whole message (the path still sets its variables).
    Whole,
    /// `body: "field"`: the body is that top-level field's value.
    Field(String),
}

/// One HTTP binding of a gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub http_method: Method,
    /// The path template.
    pub template: PathTemplate,
    /// What the body carries.
    pub body: BodyRule,
    /// The field of the response that is the HTTP response body (the whole message if `None`).
    pub response_body: Option<String>,
    /// The gRPC method.
    pub method: MethodDescriptor,
    /// 0 for the method's main rule, 1… for its additional bindings.
    pub binding: usize,
}

impl Route {
    /// The gRPC path, for example `/prfix.agent.v1.AgentService/GetTask`.
    pub fn grpc_path(&self) -> String {
        format!("/{}/{}", self.method.parent_service().full_name(), self.method.name())
    }

    /// Whether the method streams its responses.
    pub fn server_streaming(&self) -> bool {
        self.method.is_server_streaming()
    }

    /// Whether the body is taken as raw bytes: the rule's body is a `google.api.HttpBody` (the
    /// field it names, or the whole request message). Such a body is never parsed as JSON, so a
    /// handler sees exactly the bytes that came (a signed webhook payload), with their content type.
    pub fn raw_body(&self) -> bool {
        self.http_body_target().is_some()
    }

    /// The HttpBody the raw body goes into: `None` for the whole message, `Some(field)` for a field.
    pub(crate) fn http_body_target(&self) -> Option<Option<prost_reflect::FieldDescriptor>> {
        let input = self.method.input();
        match &self.body {
            BodyRule::Whole if input.full_name() == HTTP_BODY => Some(None),
            BodyRule::Field(name) => {
                let field = crate::fields::field_named(&input, name)?;
                let is_http_body = field.kind().as_message().is_some_and(|m| m.full_name() == HTTP_BODY);
                (is_http_body && !field.is_list()).then_some(Some(field))
            }
            _ => None,
        }
    }
}

/// The message a raw (unparsed) body is carried in.
pub(crate) const HTTP_BODY: &str = "google.api.HttpBody";

/// A request matched to a route.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    /// The route.
    pub route: &'a Route,
    /// The path variables: field path and percent-decoded value.
    pub bindings: Vec<(String, String)>,
}

/// The outcome of [`Routes::find`].
#[derive(Debug)]
pub enum Match<'a> {
    /// A route of this method matches the path.
    Found(RouteMatch<'a>),
    /// Routes match the path, but none of this method (HTTP 405).
    MethodNotAllowed {
        /// The methods that have a route for the path, sorted.
        allowed: Vec<Method>,
    },
    /// No route matches the path (HTTP 404).
    NotFound,
}

/// Every route of the API, built once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Reads the HTTP rule of every method of the `prfix.` services in `pool` and checks it:
    /// templates parse, variables, `body` and `response_body` name fields of the messages, and no
    /// two rules bind the same HTTP method and path. Methods without a rule get no route.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, RouteError> {
        let extension = pool.get_extension_by_name(HTTP_EXTENSION).ok_or(RouteError::NoHttpExtension)?;
        let mut routes: Vec<Route> = Vec::new();
        let mut seen: HashMap<(Method, String), String> = HashMap::new();
        for service in pool.services().filter(|s| s.package_name().starts_with(PACKAGE_PREFIX)) {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&extension) {
                    continue;
                }
                let value = options.get_extension(&extension);
                let rule = value.as_message().ok_or_else(|| bad_rule(&method, "not an HttpRule"))?;
                let mut rules = vec![rule.clone()];
                rules.extend(messages(rule, "additional_bindings"));
                for (binding, rule) in rules.iter().enumerate() {
                    if binding > 0 && messages(rule, "additional_bindings").next().is_some() {
                        return Err(bad_rule(&method, "additional bindings cannot nest"));
                    }
                    let route = route(&method, rule, binding)?;
                    let key = (route.http_method.clone(), route.template.shape());
                    if let Some(first) = seen.insert(key, method.full_name().to_owned()) {
                        return Err(RouteError::Duplicate {
                            http_method: route.http_method.to_string(),
                            template: route.template.to_string(),
                            first,
                            second: method.full_name().to_owned(),
                        });
                    }
                    routes.push(route);
                }
            }
        }
        Ok(Self { routes })
    }

    /// The routes of the prfix API (`prfix_proto::FILE_DESCRIPTOR_SET`), with the pool they use.
    pub fn prfix() -> Result<(Self, DescriptorPool), RouteError> {
        let pool = DescriptorPool::decode(prfix_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| RouteError::Descriptors(e.to_string()))?;
        Ok((Self::from_pool(&pool)?, pool))
    }

    /// Finds the route for a request. `path` is the request path (a query string after `?` is
    /// ignored). Among routes of the method that match, the most specific template wins (more
    /// literal segments, then a verb); when only routes of other methods match, their methods
    /// are returned for a 405.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let mut best: Option<RouteMatch<'_>> = None;
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            let Some(bindings) = route.template.matches(path) else { continue };
            if route.http_method != *method {
                if !allowed.contains(&route.http_method) {
                    allowed.push(route.http_method.clone());
                }
            } else if best.as_ref().is_none_or(|b| route.template.specificity() > b.route.template.specificity()) {
                best = Some(RouteMatch { route, bindings });
            }
        }
        match best {
            Some(found) => Match::Found(found),
            None if allowed.is_empty() => Match::NotFound,
            None => {
                allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                Match::MethodNotAllowed { allowed }
            }
        }
    }

    /// Every route, in the order of the services and methods in the pool.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn bad_rule(method: &MethodDescriptor, reason: &str) -> RouteError {
    RouteError::BadRule { method: method.full_name().to_owned(), reason: reason.to_owned() }
}

/// The messages of a repeated message field of `message`.
fn messages(message: &DynamicMessage, field: &str) -> impl Iterator<Item = DynamicMessage> + use<> {
    let items = match message.get_field_by_name(field).map(|v| v.into_owned()) {
        Some(Value::List(items)) => items,
        _ => Vec::new(),
    };
    items.into_iter().filter_map(|item| match item {
        Value::Message(message) => Some(message),
        _ => None,
    })
}

/// A string field of `message` (empty when unset).
fn text(message: &DynamicMessage, field: &str) -> String {
    message.get_field_by_name(field).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The route of one rule, checked against the method's messages.
fn route(method: &MethodDescriptor, rule: &DynamicMessage, binding: usize) -> Result<Route, RouteError> {
    if method.is_client_streaming() {
        return Err(bad_rule(method, "client-streaming methods cannot be transcoded"));
    }
    let (http_method, path) = pattern(method, rule)?;
    let template = PathTemplate::parse(&path)
        .map_err(|source| RouteError::Template { method: method.full_name().to_owned(), source })?;
    let input = method.input();
    for variable in template.variables() {
        let bad = |reason: String| RouteError::BadVariable {
            method: method.full_name().to_owned(),
            field: variable.to_owned(),
            reason,
        };
        match fields::resolve(&input, variable) {
            Ok(path) if path.last().is_some_and(|f| f.is_list()) => return Err(bad("it is repeated".to_owned())),
            Ok(_) => {}
            Err(FieldPathError::Unknown { message, .. }) => {
                return Err(RouteError::UnknownField {
                    method: method.full_name().to_owned(),
                    place: "path template",
                    field: variable.to_owned(),
                    message,
                });
            }
            Err(other) => return Err(bad(other.to_string())),
        }
    }
    let unknown = |place: &'static str, field: String, message: &str| RouteError::UnknownField {
        method: method.full_name().to_owned(),
        place,
        field,
        message: message.to_owned(),
    };
    let body = match text(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        field if input.get_field_by_name(field).is_some() => BodyRule::Field(field.to_owned()),
        field => return Err(unknown("body", field.to_owned(), input.full_name())),
    };
    if http_method == Method::GET && body != BodyRule::None {
        return Err(bad_rule(method, "a GET rule cannot have a body"));
    }
    let output = method.output();
    let response_body = match text(rule, "response_body") {
        field if field.is_empty() => None,
        field if output.get_field_by_name(&field).is_some() => Some(field),
        field => return Err(unknown("response_body", field, output.full_name())),
    };
    Ok(Route { http_method, template, body, response_body, method: method.clone(), binding })
}

/// The HTTP method and path template of a rule (`get`, `post`, … or `custom`).
fn pattern(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<(Method, String), RouteError> {
    for (field, http_method) in PATTERNS {
        if rule.has_field_by_name(field) {
            return Ok((http_method.clone(), text(rule, field)));
        }
    }
    if rule.has_field_by_name("custom")
        && let Some(custom) = rule.get_field_by_name("custom").and_then(|v| v.as_message().cloned())
    {
        let kind = text(&custom, "kind");
        let http_method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| bad_rule(method, &format!("custom kind `{kind}` is not an HTTP method")))?;
        return Ok((http_method, text(&custom, "path")));
    }
    Err(bad_rule(method, "no pattern (get, put, post, delete, patch or custom) is set"))
}
