"""The model service. Imports numpy, FastAPI, uvicorn and pydantic only (no training library):
it reads `model.npz`, the trained pipeline compiled to arrays, and its JSON manifest."""
