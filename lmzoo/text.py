"""Plain-text helpers shared by the tokenizers (training on big texts) and the data layer (encoding corpora)."""


def line_aligned_chunks(text, chunk_characters):
    """Cut `text` after line breaks into pieces of about `chunk_characters`; joined, they give `text` back.

    Examples:

        >>> from lmzoo.text import line_aligned_chunks
        >>> line_aligned_chunks("ab\\ncd\\nef", 2)
        ['ab\\n', 'cd\\n', 'ef']
    """
    chunks, start = [], 0
    while start < len(text):
        end = text.find("\n", start + chunk_characters)
        end = len(text) if end < 0 else end + 1
        chunks.append(text[start:end])
        start = end
    return chunks
