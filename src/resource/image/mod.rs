//! The `ecrmirror_image` resource: Terraform's calls mapped onto [`plan`] and [`apply`].

pub(crate) mod apply;
pub(crate) mod config;
pub(crate) mod owners;
pub(crate) mod plan;
pub(crate) mod referrers;
pub(crate) mod refresh;
pub(crate) mod repository;
pub mod state;
pub(crate) mod whereabouts;

use std::sync::Arc;

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use crate::clients::{configured, Clients, SharedClients};
use crate::error::Error;
use crate::terraform::Diagnose;
use crate::transfer::CopyMethod;
use apply::Adopt;
use plan::Operation;
use state::{ImageState, Private};

/// What a plan verifies: the source and the `verify` policy, as the arguments parsed them.
type Signing = (
    Value<crate::reference::SourceRef>,
    Value<crate::verify::Policy>,
);

/// `ecrmirror_image`.
pub(crate) struct ImageResource {
    clients: SharedClients,
    /// The mirrors this process planned, by tag (one owner per tag).
    planned_tags: owners::PlannedTags,
    /// The tags applied in this process (see [`owners::TagLedger`]).
    tag_ledger: owners::TagLedger,
    /// What plans found about the repositories of new mirrors.
    repositories: repository::RepositoryChecks,
}

impl ImageResource {
    /// The resource, using the clients `configure` will set.
    pub(crate) fn new(clients: SharedClients) -> ImageResource {
        ImageResource {
            clients,
            planned_tags: Default::default(),
            tag_ledger: Default::default(),
            repositories: Default::default(),
        }
    }

    /// The provider's `copy_method` as the plan knows it: `None` while Terraform does not
    /// know it yet; the default before `configure` ran (validation only).
    fn default_method(&self) -> Option<CopyMethod> {
        match self.clients.get() {
            Some(clients) => clients.method(),
            None => Some(CopyMethod::default()),
        }
    }

    /// Warns on `tag` when another mirror planned in this process targets the same tag from
    /// another source.
    fn check_owner(&self, planned: &ImageState, diags: &mut Diagnostics) {
        let others = self.planned_tags.record(planned);
        if let (false, Value::Value(repository), Value::Value(tag)) =
            (others.is_empty(), &planned.repository, &planned.tag)
        {
            Error::TagShared {
                target: format!("{repository}:{tag}"),
                others,
            }
            .warn(diags);
        }
    }

    /// A plan that copies: the registry clients are made meanwhile, for the apply (in this
    /// process when Terraform plans and applies in one run).
    fn prepare_copy(&self) {
        if let Some(clients) = self.clients.get() {
            clients.distribution.prepare();
        }
    }

    /// Warns on `repository` when the mirror `config` creates goes to a repository that does
    /// not exist: ECR creates it on push from a template, or the apply fails unless another
    /// resource makes it first. Whether the repository is there to push to (or will be): a
    /// plan for a missing one asks nothing of the source.
    async fn check_repository(&self, config: &ImageState, diags: &mut Diagnostics) -> bool {
        let Some(clients) = self.clients.get() else {
            return true;
        };
        match self.repositories.warning(clients, config).await {
            Some(warning) => {
                warning.warn(diags);
                !matches!(warning, Error::RepositoryNotFound { .. })
            }
            None => true,
        }
    }

    /// Warns, for a plan that copies, on what the copy method of `planned` cannot copy at
    /// all (an OCI artifact through a Docker engine), which the apply then refuses before
    /// any transfer: asked of the source only then, and only when the method, the source and
    /// its credentials are known. A warning, not an error: `terraform destroy` plans every
    /// create of the configuration first, and must not be stopped by one.
    async fn check_copyable(&self, planned: &ImageState, diags: &mut Diagnostics) {
        let Some(clients) = self.clients.get() else {
            return;
        };
        let (Ok(Value::Value(source)), Value::Value(method)) =
            (config::source(&planned.docker_source), &planned.copy_method)
        else {
            return;
        };
        let (Ok(method), false) = (method.parse::<CopyMethod>(), clients.pending.registry_auth)
        else {
            return;
        };
        let credentials = clients.source_auth.for_host(source.host());
        if let Some(refused) = clients
            .transfer(method)
            .refuses(&source, credentials.as_ref())
            .await
        {
            refused.warn(diags);
        }
    }

    /// With `verify`, for a plan whose `verified_by` is not known yet: verifies the source
    /// and plans what verified it. A plan that copies verifies what the source names now
    /// and plans that digest as `source_digest` (the apply copies it, by digest); a plan
    /// that only changed `verify` verifies the digest mirrored. An unsigned or wrongly
    /// signed source is the plan's error. When the source, its credentials or the policy
    /// are not known yet, or the source cannot be asked now, the apply verifies, before any
    /// transfer.
    async fn check_signed(
        &self,
        planned: &mut ImageState,
        signing: Signing,
        diags: &mut Diagnostics,
    ) {
        let Some(clients) = self.clients.get() else {
            return;
        };
        if !planned.verified_by.is_unknown() || clients.pending.registry_auth {
            return;
        }
        let (Value::Value(source), Value::Value(policy)) = signing else {
            return;
        };
        let copies = planned.image_digest.is_unknown();
        let asked = match (&planned.source_digest, copies) {
            (_, true) => source.clone(),
            (Value::Value(digest), false) => source.pinned(digest),
            (_, false) => return,
        };
        match apply::signed(clients, &asked, &policy).await {
            Ok(verified) => {
                if copies {
                    planned.source_digest = Value::Value(verified.digest);
                }
                planned.verified_by = Value::Value(verified.by);
            }
            Err(err @ (Error::Unverified { .. } | Error::TrustRoot { .. })) => err.report(diags),
            Err(err) => diags.warning(
                format!("{source} could not be verified at plan"),
                format!("{}: {}\n\nThe apply verifies it before anything is copied, and copies only what it verified.", err, err.detail()),
                AttributePath::new("verify"),
            ),
        }
    }

    /// The arguments of `config`, parsed once for the plan, with what only a plan can find
    /// wrong reported: validation runs before the provider is configured, so the arguments
    /// that depend on its `copy_method` (`platforms`, `copy_referrers`) are checked here.
    fn arguments(&self, config: &ImageState, diags: &mut Diagnostics) -> config::Arguments {
        let args = config::Arguments::parse(config, self.default_method());
        for error in &args.errors {
            error.report(diags);
        }
        args
    }

    fn clients(&self, diags: &mut Diagnostics) -> Option<Arc<Clients>> {
        configured(&self.clients)
            .map_err(|err| err.report(diags))
            .ok()
    }
}

#[async_trait]
impl Resource for ImageResource {
    type State<'a> = ImageState;
    type PrivateState<'a> = Private;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(state::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ImageState) -> Option<()> {
        for error in plan::validate(&config) {
            error.report(diags);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ImageState,
        private: Private,
        _meta: ValueEmpty,
    ) -> Option<(ImageState, Private)> {
        let Some(clients) = self.clients(diags) else {
            return Some((state, private));
        };
        match refresh::read(&clients, &state).await {
            Ok(read) => {
                for warning in &read.warnings {
                    warning.warn(diags);
                }
                read.state.map(|mut state| {
                    // With `track_source`, a source tag that moved since the mirror was
                    // verified names an image nothing verified (yet): state says so.
                    let mirrored = private.as_ref().and_then(|p| p.source_digest.as_ref());
                    if let (Value::Value(now), Some(mirrored)) = (&state.source_digest, mirrored) {
                        if now != mirrored {
                            state.verified_by = Value::Null;
                        }
                    }
                    (state, private)
                })
            }
            Err(err) => {
                // Only confirmed absence removes a resource; anything else keeps the state.
                err.report(diags);
                Some((state, private))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: ImageState,
        config: ImageState,
        _meta: ValueEmpty,
    ) -> Option<(ImageState, Private)> {
        let args = self.arguments(&config, diags);
        let signing = (args.source.clone(), args.verify.clone());
        let mut planned = plan::plan_create(proposed, &config, args);
        self.check_owner(&planned, diags);
        self.prepare_copy();
        if self.check_repository(&config, diags).await {
            self.check_copyable(&planned, diags).await;
            self.check_signed(&mut planned, signing, diags).await;
        }
        Some((planned, None))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ImageState,
        proposed: ImageState,
        config: ImageState,
        private: Private,
        _meta: ValueEmpty,
    ) -> Option<(ImageState, Private, Vec<AttributePath>)> {
        let args = self.arguments(&config, diags);
        let whereabouts = whereabouts::at_plan(self.clients.get(), &prior, &config).await;
        if let Some(warning) = whereabouts.warning(&prior, false) {
            warning.warn(diags);
        }
        let relocated = whereabouts != whereabouts::Whereabouts::Here;
        let signing = (args.source.clone(), args.verify.clone());
        let (mut planned, replace) =
            plan::plan_update(&prior, proposed, &config, &private, args, relocated);
        self.check_owner(&planned, diags);
        if let Some(warning) = plan::index_replaced(&prior, &planned, &private, &replace) {
            warning.warn(diags);
        }
        let reachable = if replace.contains(&"repository") || replace.contains(&"registry_id") {
            self.check_repository(&config, diags).await
        } else {
            true
        };
        // A re-mirror into the same tag (not an import's first plan, which adopts) meets an
        // immutable tag: said at plan time.
        if planned.image_digest.is_unknown() {
            self.prepare_copy();
            if reachable {
                self.check_copyable(&planned, diags).await;
            }
        }
        if reachable {
            self.check_signed(&mut planned, signing, diags).await;
        }
        let remirror = replace.is_empty()
            && planned.image_digest.is_unknown()
            && prior.docker_source.is_value();
        if let (true, Some(clients)) = (remirror, self.clients.get()) {
            if let Some(warning) = apply::immutable_remirror(clients, &planned).await {
                warning.warn(diags);
            }
        }
        let replace = replace.into_iter().map(AttributePath::new).collect();
        Some((planned, private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ImageState,
        private: Private,
        _meta: ValueEmpty,
    ) -> Option<Private> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ImageState,
        _config: ImageState,
        _private: Private,
        _meta: ValueEmpty,
    ) -> Option<(ImageState, Private)> {
        let clients = self.clients(diags)?;
        match apply::mirror(
            &clients,
            &self.tag_ledger,
            &planned,
            Operation::Create,
            Adopt::IfSame,
        )
        .await
        {
            Ok((state, private)) => Some((state, Some(private))),
            Err(err) => {
                err.report(diags);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ImageState,
        mut planned: ImageState,
        _config: ImageState,
        private: Private,
        _meta: ValueEmpty,
    ) -> Option<(ImageState, Private)> {
        // Referrers leave with `copy_referrers`: the tags the mirror copied are removed.
        let drop_referrers = prior.copy_referrers == Value::Value(true)
            && planned.copy_referrers == Value::Value(false);
        if !planned.image_digest.is_unknown()
            && !drop_referrers
            && !planned.verified_by.is_unknown()
        {
            // Nothing in ECR changes (keep_remotely, timeouts): the plan is the result.
            return Some((planned, private));
        }
        let Some(clients) = self.clients(diags) else {
            return Some((prior, private));
        };
        if !planned.image_digest.is_unknown() && planned.verified_by.is_unknown() {
            // `verify` changed, and the plan could not verify: the mirrored digest is
            // verified now.
            match apply::reverified(&clients, &planned).await {
                Ok(by) => planned.verified_by = by,
                Err(err) => {
                    err.report(diags);
                    return Some((prior, private));
                }
            }
            if !drop_referrers {
                return Some((planned, private));
            }
        }
        if drop_referrers {
            if let Err(err) = apply::drop_referrers(&clients, &self.tag_ledger, &prior).await {
                err.report(diags);
                return Some((prior, private));
            }
        }
        if !planned.image_digest.is_unknown() {
            let private = private.map(|p| state::PrivateData {
                referrer_digests: None,
                ..p
            });
            return Some((planned, private));
        }
        // New triggers ask for a copy whatever ECR holds; otherwise (an import getting its
        // docker_source, a new source, a tag re-pointed in ECR) what ECR already holds is
        // adopted when it is the source's image.
        let adopt = if planned.triggers != prior.triggers {
            Adopt::Never
        } else {
            Adopt::IfSame
        };
        match apply::mirror(
            &clients,
            &self.tag_ledger,
            &planned,
            Operation::Update,
            adopt,
        )
        .await
        {
            Ok((state, private)) => Some((state, Some(private))),
            Err(err) => {
                err.report(diags);
                Some((prior, private))
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(ImageState, Private)> {
        let clients = self.clients(diags)?;
        match refresh::import(&clients, &id).await {
            Ok((state, private)) => Some((state, Some(private))),
            Err(err) => {
                err.report(diags);
                None
            }
        }
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ImageState,
        _private: Private,
        _meta: ValueEmpty,
    ) -> Option<()> {
        let clients = self.clients(diags)?;
        match apply::delete(&clients, &self.tag_ledger, &prior).await {
            Ok(warning) => {
                if let Some(warning) = warning {
                    warning.warn(diags);
                }
                Some(())
            }
            Err(err) => {
                err.report(diags);
                None
            }
        }
    }
}
