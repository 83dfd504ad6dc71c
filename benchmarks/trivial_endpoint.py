"""The reference for `bench_service.py`: a trivial FastAPI endpoint taking the same body
(issue 11's code, as given), served by the same uvicorn as the service."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class In(BaseModel):
    age: int
    sex: str
    bmi: float
    children: int
    smoker: bool
    region: str


@app.post("/p")
def p(body: In):
    return {"charges": 1.0}
