"""The published site's templates and static assets, installed as the package `jobs.site`."""
