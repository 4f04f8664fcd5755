"""Operator tools that bring another rebuilder's data into the store (`rebuilder import-rebuilderd`)."""
