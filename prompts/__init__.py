"""Prompt templates (data files). In an installed package this folder is `assistant.prompts`."""
