//! Every query parameter the client may send to env0, in one list, each with the public source
//! that shows env0 takes it; URLs get their query string only through [`set_query`].
//!
//! A validating env0 answers a parameter it does not know with 400 and nothing else: the
//! exporter then sees nothing at all. So the client sends only what env0's own clients (its
//! Terraform provider, Backstage plugin, MCP server) or its API reference show it sending. The
//! one exception is marked [`Parameter::probed`]: it is sent once per process to learn what it
//! changes, and dropped for good on a 400 (see `Client::environments`).

use jiff::Timestamp;
use url::Url;

/// The env0 routes the client reads, as far as query parameters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /organizations`.
    Organizations,
    /// `GET /projects`.
    Projects,
    /// `GET /environments`.
    Environments,
    /// `GET /environments/{id}/deployments`.
    EnvironmentDeployments,
    /// `GET /environments/deployments/{id}`.
    Deployment,
}

/// One query parameter the client may send on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameter {
    /// Where it is sent.
    pub route: Route,
    /// Its name, as sent.
    pub name: &'static str,
    /// The public source that shows env0 takes it.
    pub source: &'static str,
    /// Not shown by any env0 source: sent only by a once-per-process probe, dropped on a 400.
    pub probed: bool,
}

const fn taken(route: Route, name: &'static str, source: &'static str) -> Parameter {
    Parameter {
        route,
        name,
        source,
        probed: false,
    }
}

const PROVIDER_ENVIRONMENTS: &str = "env0 Terraform provider client/environment.go";
const LIST_DEPLOYMENTS: &str = "env0 API reference: List Deployments";

/// Every query parameter the client can send, per route. `/organizations` and a single
/// deployment take none.
pub const PARAMETERS: [Parameter; 13] = [
    taken(
        Route::Projects,
        "organizationId",
        "env0 Terraform provider client/project.go",
    ),
    taken(Route::Environments, "organizationId", PROVIDER_ENVIRONMENTS),
    taken(Route::Environments, "projectId", PROVIDER_ENVIRONMENTS),
    taken(Route::Environments, "limit", PROVIDER_ENVIRONMENTS),
    taken(Route::Environments, "offset", PROVIDER_ENVIRONMENTS),
    Parameter {
        route: Route::Environments,
        name: "includeSubEnvironments",
        source: "none: no env0 client sends it; probed once per process, dropped on a 400",
        probed: true,
    },
    taken(Route::EnvironmentDeployments, "limit", LIST_DEPLOYMENTS),
    taken(Route::EnvironmentDeployments, "offset", LIST_DEPLOYMENTS),
    taken(Route::EnvironmentDeployments, "fromDate", LIST_DEPLOYMENTS),
    taken(Route::EnvironmentDeployments, "toDate", LIST_DEPLOYMENTS),
    taken(
        Route::EnvironmentDeployments,
        "deploymentTypes",
        LIST_DEPLOYMENTS,
    ),
    taken(Route::EnvironmentDeployments, "statuses", LIST_DEPLOYMENTS),
    taken(Route::EnvironmentDeployments, "userIds", LIST_DEPLOYMENTS),
];

/// The entry of `name` on `route`, if the list holds one.
#[must_use]
pub fn parameter(route: Route, name: &str) -> Option<&'static Parameter> {
    PARAMETERS
        .iter()
        .find(|p| p.route == route && p.name == name)
}

/// Sets `url`'s query to `pairs`, in order. A name the list does not hold for `route` is a bug:
/// it panics in debug builds and tests, and is left out (with an error logged) in release
/// builds, so env0 is never sent it.
pub(super) fn set_query(url: &mut Url, route: Route, pairs: &[(&str, &str)]) {
    url.set_query(None);
    if pairs.is_empty() {
        return;
    }
    let mut query = url.query_pairs_mut();
    for (name, value) in pairs {
        let listed = parameter(route, name).is_some();
        debug_assert!(
            listed,
            "query parameter {name} is not in the client's list for {route:?}"
        );
        if listed {
            query.append_pair(name, value);
        } else {
            tracing::error!(
                parameter = name,
                ?route,
                "a query parameter not in the client's list was left out"
            );
        }
    }
}

/// Filters of a deployment listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentQuery {
    /// `fromDate`, sent as `YYYY-MM-DDTHH:mm:ss.sssZ`.
    pub from: Timestamp,
    /// `toDate`, same format; fixing it at the poll's start keeps the listing stable.
    pub to: Timestamp,
    /// `deploymentTypes`, comma-joined; empty means not sent.
    pub deployment_types: Vec<String>,
    /// `statuses`, comma-joined; empty means not sent.
    pub statuses: Vec<String>,
    /// `userIds`, comma-joined; empty means not sent.
    pub user_ids: Vec<String>,
}

impl DeploymentQuery {
    /// All deployments created between `from` and `to`, no other filter.
    #[must_use]
    pub fn between(from: Timestamp, to: Timestamp) -> Self {
        Self {
            from,
            to,
            deployment_types: Vec::new(),
            statuses: Vec::new(),
            user_ids: Vec::new(),
        }
    }
}

/// A timestamp as env0's `fromDate`/`toDate` want it: `2026-07-01T14:02:10.000Z`.
#[must_use]
pub fn format_query_timestamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `pairs` followed by the `filters` that have a value (a filter left empty is not sent).
pub(super) fn with_filters<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
    filters: &'a [(&'a str, String)],
) -> Vec<(&'a str, &'a str)> {
    pairs.extend(
        filters
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (*n, v.as_str())),
    );
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_list_holds_what_env0s_clients_send_each_with_a_public_source() {
        let names = |route| -> BTreeSet<&str> {
            PARAMETERS
                .iter()
                .filter(|p| p.route == route)
                .map(|p| p.name)
                .collect()
        };
        // Hand-written from env0's clients and API reference (env0-api.md).
        assert!(names(Route::Organizations).is_empty());
        assert!(names(Route::Deployment).is_empty());
        assert_eq!(names(Route::Projects), BTreeSet::from(["organizationId"]));
        assert_eq!(
            names(Route::Environments),
            BTreeSet::from([
                "organizationId",
                "projectId",
                "limit",
                "offset",
                "includeSubEnvironments"
            ])
        );
        assert_eq!(
            names(Route::EnvironmentDeployments),
            BTreeSet::from([
                "limit",
                "offset",
                "fromDate",
                "toDate",
                "deploymentTypes",
                "statuses",
                "userIds"
            ])
        );
        let unique: BTreeSet<_> = PARAMETERS
            .iter()
            .map(|p| (format!("{:?}", p.route), p.name))
            .collect();
        assert_eq!(
            unique.len(),
            PARAMETERS.len(),
            "one entry per route and name"
        );
        for p in &PARAMETERS {
            assert!(
                p.source.starts_with("env0 ") || p.probed,
                "{p:?} names no env0 source"
            );
        }
        // Exactly one parameter is a guess, and it is probed, not sent.
        let probed: Vec<_> = PARAMETERS.iter().filter(|p| p.probed).collect();
        assert_eq!(probed.len(), 1);
        assert_eq!(
            (probed[0].route, probed[0].name),
            (Route::Environments, "includeSubEnvironments")
        );
    }

    #[test]
    fn a_listed_parameter_goes_into_the_url_in_order() {
        let mut url: Url = "https://api.env0.com/projects?stale=1".parse().unwrap();
        set_query(&mut url, Route::Projects, &[("organizationId", "o 1")]);
        assert_eq!(url.query(), Some("organizationId=o+1"));
        set_query(&mut url, Route::Organizations, &[]);
        assert_eq!(url.query(), None);
    }

    #[test]
    #[should_panic(expected = "not in the client's list")]
    fn a_parameter_not_in_the_list_cannot_be_sent() {
        let mut url: Url = "https://api.env0.com/environments".parse().unwrap();
        set_query(&mut url, Route::Environments, &[("sort", "asc")]);
    }

    #[test]
    #[should_panic(expected = "not in the client's list")]
    fn a_parameter_of_another_route_cannot_be_sent() {
        let mut url: Url = "https://api.env0.com/projects".parse().unwrap();
        set_query(&mut url, Route::Projects, &[("limit", "100")]);
    }
}
