"""The JSON shapes of the server's API, for its OpenAPI schema and to check its answers.

pydantic is imported only when a server is made, so the command line starts without it.
"""

# No "from __future__ import annotations": pydantic reads the annotations at run time.
import functools


@functools.cache
def schemas():
    """The JSON shapes of the API (pydantic is imported only when a server is made)."""
    from pydantic import BaseModel, Field

    class ApiError(BaseModel):
        error: str = Field(description="what is wrong with the request")

    class Candidate(BaseModel):
        character: str
        probability: float

    class Prediction(BaseModel):
        character: str | None = Field(description="the most likely character; null when the image holds none")
        probability: float | None = Field(description="its calibrated probability; null when not a character")
        top: list[Candidate] = Field(description="the most likely characters, most likely first")
        unsure: bool = Field(description="probability below the server's minimum confidence, or not a character")
        reason: str | None = Field(None, description="why the image is not taken for a character (blank, a speck, "
                                   "a scribble, a shape, a texture, several characters)")
        input_png: str | None = Field(description="base64 PNG of the 28x28 image the model saw; null when blank")

    class LineCharacter(BaseModel):
        character: str
        probability: float
        unsure: bool = Field(description="probability below the server's minimum confidence")
        box: list[int] = Field(description="[x0, y0, x1, y1] in the uploaded image's pixels")
        space_before: bool = Field(False, description="a gap much wider than the others comes before it")
        row: int = Field(0, description="the row of writing it is in, 0 for the top one")
        top: list[Candidate]

    class IgnoredMark(BaseModel):
        box: list[int] = Field(description="[x0, y0, x1, y1] in the uploaded image's pixels")
        row: int = Field(0, description="the row of writing it is in, 0 for the top one")
        reason: str = Field(description="why it is not taken for a character (a blot, a full stop or a speck, "
                            "a scribble)")

    class LineReading(BaseModel):
        text: str = Field(description="the characters read, with a space where a gap is much wider than the others "
                          "and a line break between rows of writing")
        characters: list[LineCharacter]
        ignored: list[IgnoredMark] = Field([], description="marks that are not characters, left out of the text")
        reason: str | None = Field(None, description="why no character was read, when none was")

    class ModelInfo(BaseModel, extra="allow"):
        name: str
        classes: int
        mapping: str = Field(description="mapping[k] is the character of class k")
        params: int | None = Field(None, description="number of parameters, when known")
        test_accuracy: float | None = Field(None, description="accuracy on its test set, when known")
        split: str | None = Field(None, description="the EMNIST split it was trained on")
        synthetic: bool | None = Field(None, description="trained on the synthetic offline sample, not EMNIST")

    class Health(BaseModel):
        status: str
        model: str

    return ApiError, Candidate, Prediction, LineCharacter, LineReading, ModelInfo, Health


def image_body_doc() -> dict:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "description": "an image (PNG, JPEG, GIF, BMP, TIFF, WebP, PPM) as the raw body or as "
            "a multipart upload in field 'file'",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "image/png": binary,
                "image/jpeg": binary,
                "application/octet-stream": binary,
            },
        }
    }
