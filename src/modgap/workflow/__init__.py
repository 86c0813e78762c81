"""Helpers for driving the Snakemake workflow and its DVC facade."""
