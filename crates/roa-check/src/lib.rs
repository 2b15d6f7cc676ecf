//! `roa-check`: an offline, explainable Runs-on-Atlassian checker for Forge manifests.
