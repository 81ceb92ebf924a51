//! Faults a test injects: latency, failing requests, and the rules that pick requests.

use std::time::Duration;

use crate::status::ApiError;

/// Selects requests by method, path glob and whether they are watches.
///
/// The glob's `*` matches any run of characters, `/` included:
/// `/api/v1/namespaces/*/pods/*/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    method: Option<String>,
    path: Option<String>,
    watch: Option<bool>,
}

impl RequestFilter {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Requests whose path matches `glob`.
    pub fn path(glob: impl Into<String>) -> Self {
        RequestFilter {
            path: Some(glob.into()),
            ..Self::default()
        }
    }

    /// Only requests with this HTTP method (case-insensitive).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Only watch requests (`true`) or only non-watch requests (`false`).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = Some(watch);
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str, is_watch: bool) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_ref().is_none_or(|g| glob_match(g, path))
            && self.watch.is_none_or(|w| w == is_watch)
    }
}

impl From<&str> for RequestFilter {
    fn from(glob: &str) -> Self {
        RequestFilter::path(glob)
    }
}

impl From<String> for RequestFilter {
    fn from(glob: String) -> Self {
        RequestFilter::path(glob)
    }
}

/// `*` matches any sequence of characters; everything else matches itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The error an injected failure answers with.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub(crate) error: ApiError,
}

impl Failure {
    /// A Status failure with kube-apiserver's reason for `code` and a generic message.
    pub fn code(code: u16) -> Self {
        Failure {
            error: ApiError::new(code, format!("injected failure ({code})")),
        }
    }

    /// 429 TooManyRequests with a Retry-After header of `seconds`.
    pub fn too_many_requests(seconds: u32) -> Self {
        let mut failure = Self::code(429);
        failure.error.message = "Too many requests, please try again later.".into();
        failure.error.retry_after = Some(seconds);
        failure
    }

    /// 403 Forbidden worded like an RBAC denial.
    pub fn forbidden(user: &str) -> Self {
        let mut failure = Self::code(403);
        failure.error.message = format!("forbidden: User \"{user}\" cannot perform this request");
        failure
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.error.message = message.into();
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.error.reason = reason.into();
        self
    }

    /// Adds a Retry-After header (and details.retryAfterSeconds).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.error.retry_after = Some(seconds);
        self
    }

    /// The Status object this failure is sent as.
    pub fn to_status(&self) -> serde_json::Value {
        self.error.to_status()
    }
}

impl From<u16> for Failure {
    fn from(code: u16) -> Self {
        Failure::code(code)
    }
}

#[derive(Debug)]
struct FailureRule {
    filter: RequestFilter,
    /// None: until cleared.
    remaining: Option<usize>,
    failure: Failure,
}

/// Injected latency and failures, consulted for every request.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    latencies: Vec<(RequestFilter, Duration)>,
    failures: Vec<FailureRule>,
}

impl FaultState {
    pub fn add_latency(&mut self, filter: RequestFilter, latency: Duration) {
        self.latencies.push((filter, latency));
    }

    pub fn clear_latency(&mut self) {
        self.latencies.clear();
    }

    pub fn add_failure(
        &mut self,
        filter: RequestFilter,
        remaining: Option<usize>,
        failure: Failure,
    ) {
        if remaining != Some(0) {
            self.failures.push(FailureRule {
                filter,
                remaining,
                failure,
            });
        }
    }

    pub fn clear_failures(&mut self) {
        self.failures.clear();
    }

    pub fn pending_failures(&self) -> usize {
        self.failures
            .iter()
            .map(|r| r.remaining.unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add)
    }

    /// The sum of every matching latency rule.
    pub fn latency(&self, method: &str, path: &str, is_watch: bool) -> Duration {
        self.latencies
            .iter()
            .filter(|(f, _)| f.matches(method, path, is_watch))
            .map(|(_, d)| *d)
            .sum()
    }

    /// The first matching failure rule fires and counts down.
    pub fn take_failure(&mut self, method: &str, path: &str, is_watch: bool) -> Option<Failure> {
        let index = self
            .failures
            .iter()
            .position(|r| r.filter.matches(method, path, is_watch))?;
        let rule = &mut self.failures[index];
        let failure = rule.failure.clone();
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                self.failures.remove(index);
            }
        }
        Some(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_paths() {
        assert!(glob_match(
            "/api/v1/namespaces/*/pods/*/status",
            "/api/v1/namespaces/a/pods/b/status"
        ));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/api/*", "/api/v1/pods"));
        assert!(!glob_match("/api/*/status", "/api/v1/pods"));
        assert!(glob_match("/version", "/version"));
        assert!(!glob_match("/version", "/versions"));
        assert!(glob_match("*pods*", "/api/v1/pods?x"));
        assert!(glob_match("/a*b*c", "/a-b-b-c"));
    }

    #[test]
    fn filters_combine_method_path_and_watch() {
        let f = RequestFilter::path("/api/v1/*").method("patch");
        assert!(f.matches("PATCH", "/api/v1/namespaces/a/pods/b", false));
        assert!(!f.matches("GET", "/api/v1/namespaces/a/pods/b", false));
        let w = RequestFilter::any().watch(true);
        assert!(w.matches("GET", "/x", true));
        assert!(!w.matches("GET", "/x", false));
    }

    #[test]
    fn failures_count_down_in_order() {
        let mut state = FaultState::default();
        state.add_failure(RequestFilter::path("/api/*"), Some(2), Failure::code(500));
        state.add_failure(RequestFilter::any(), Some(1), Failure::too_many_requests(2));
        assert_eq!(
            state
                .take_failure("GET", "/apis", false)
                .unwrap()
                .error
                .code,
            429
        );
        assert!(state.take_failure("GET", "/apis", false).is_none());
        assert_eq!(
            state
                .take_failure("GET", "/api/v1", false)
                .unwrap()
                .error
                .code,
            500
        );
        assert_eq!(
            state
                .take_failure("GET", "/api/v1", false)
                .unwrap()
                .error
                .code,
            500
        );
        assert!(state.take_failure("GET", "/api/v1", false).is_none());
        state.add_failure(RequestFilter::any(), None, Failure::forbidden("bob"));
        for _ in 0..3 {
            assert_eq!(
                state.take_failure("GET", "/x", false).unwrap().error.reason,
                "Forbidden"
            );
        }
        state.clear_failures();
        assert_eq!(state.pending_failures(), 0);
    }

    #[test]
    fn latencies_add_up() {
        let mut state = FaultState::default();
        state.add_latency(RequestFilter::any(), Duration::from_millis(10));
        state.add_latency(RequestFilter::path("/api/*"), Duration::from_millis(5));
        assert_eq!(
            state.latency("GET", "/api/v1", false),
            Duration::from_millis(15)
        );
        assert_eq!(
            state.latency("GET", "/apis", false),
            Duration::from_millis(10)
        );
        state.clear_latency();
        assert_eq!(state.latency("GET", "/api/v1", false), Duration::ZERO);
    }
}
