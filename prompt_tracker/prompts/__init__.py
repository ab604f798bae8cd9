"""The prompt library: named prompts with immutable, numbered versions, in the database."""
