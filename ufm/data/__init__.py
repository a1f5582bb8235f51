"""Datasets that ship with packages, generators and loaders for user data on disk."""
