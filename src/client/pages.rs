//! Single pages of env0's listings, for callers that bound their own reads (`doctor` asks a
//! few dozen questions at most, and must never page through a whole organisation). Their
//! queries go through the client's one list of parameters ([`query`](super::query)).

use super::query::{Route, set_query};
use super::{Client, DeploymentLog, Endpoint, Environment, Page, Result};

impl Client {
    /// One page of `GET /environments?organizationId=…&limit=…&offset=…`, with `projectId` when
    /// given and `includeSubEnvironments=true` when `with_subs`.
    ///
    /// # Errors
    /// See [`Error`](super::Error).
    pub async fn environments_page(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        with_subs: bool,
        limit: usize,
        offset: usize,
    ) -> Result<Page<Environment>> {
        let url = self.environments_url(organization_id, project_id, with_subs, limit, offset);
        self.get_page(Endpoint::Environments, url).await
    }

    /// One request of `GET /environments/{id}/deployments` with these query pairs, in this
    /// order: the caller chooses among the parameters of the client's list.
    ///
    /// # Errors
    /// See [`Error`](super::Error).
    pub async fn deployments_page(
        &self,
        environment_id: &str,
        query: &[(&str, &str)],
    ) -> Result<Page<DeploymentLog>> {
        let mut url = self.url(&["environments", environment_id, "deployments"]);
        set_query(&mut url, Route::EnvironmentDeployments, query);
        self.get_page(Endpoint::Deployments, url).await
    }
}
