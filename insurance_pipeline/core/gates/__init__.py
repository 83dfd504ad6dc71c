"""The gates: one registry declares each (`registry.GATES`), verdicts record what each
decided for a model (`verdicts`), and registration and deployment decide from them
(`decision`)."""
