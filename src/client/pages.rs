//! Single pages of env0's listings, for callers that bound their own reads (`doctor` asks a
//! few dozen questions at most, and must never page through a whole organisation).

use super::{Client, DeploymentLog, Endpoint, Environment, Page, Result};

impl Client {
    /// One page of `GET /environments?organizationId=…&limit=…&offset=…` (with `projectId`
    /// when given): the organisation's environments as the exporter lists them.
    ///
    /// # Errors
    /// See [`Error`](super::Error).
    pub async fn environments_page(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Page<Environment>> {
        let mut url = self.url(&["environments"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("organizationId", organization_id);
            if let Some(project) = project_id {
                pairs.append_pair("projectId", project);
            }
            pairs
                .append_pair("limit", &limit.to_string())
                .append_pair("offset", &offset.to_string());
        }
        self.get_page(Endpoint::Environments, url).await
    }

    /// One request of `GET /environments/{id}/deployments` with exactly these query pairs, in
    /// this order: the caller chooses among the parameters the exporter itself sends.
    ///
    /// # Errors
    /// See [`Error`](super::Error).
    pub async fn deployments_page(
        &self,
        environment_id: &str,
        query: &[(&str, &str)],
    ) -> Result<Page<DeploymentLog>> {
        let mut url = self.url(&["environments", environment_id, "deployments"]);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.get_page(Endpoint::Deployments, url).await
    }
}
