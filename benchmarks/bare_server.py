"""The yardstick for ``handwritten serve``: a bare FastAPI endpoint doing the least a recogniser can.

It decodes the posted PNG with Pillow, resizes it to 28x28 and calls the same ONNX model in
onnxruntime (with the session settings the server uses), answering the best class as JSON.
No framing, no checks, no limits: what is left is the cost of HTTP, decoding and the model.

    python benchmarks/bare_server.py MODEL.onnx PORT
"""

# No "from __future__ import annotations": FastAPI reads the endpoint's annotations at run time.
import io
import sys


def create_app(onnx_path: str):
    import numpy as np
    from fastapi import FastAPI, Request
    from PIL import Image

    from handwritten.runtime import session as make_session

    session = make_session(onnx_path)
    name = session.get_inputs()[0].name
    app = FastAPI()

    @app.post("/api/predict")
    async def predict(request: Request):
        image = Image.open(io.BytesIO(await request.body())).convert("L").resize((28, 28), Image.Resampling.BILINEAR)
        x = (255 - np.asarray(image, dtype=np.float32)) / 255.0
        probs = session.run(None, {name: x[None, ..., None]})[0][0]
        best = int(np.argmax(probs))
        return {"class": best, "probability": float(probs[best])}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
