"""The units of model usage and how they nest, as genai-prices defines them (its unit registry, MIT licence).

Each price key (``input_mtok``) prices one usage key (``input_tokens``) per ``per`` units. A unit whose
dimensions include another's is part of it: ``cache_read_tokens`` (tokens, input, cache_read) is part of
``input_tokens`` (tokens, input), so a request's plain input is its input tokens less the cached ones that
are priced apart. Kept as data here so that the ``llm`` model needs no extra package.
"""

from __future__ import annotations

#: price key -> (usage key, units per price, dimensions)
UNITS: dict[str, tuple[str, int, dict[str, str]]] = {
    "input_mtok": ("input_tokens", 1000000, {"family": "tokens", "direction": "input"}),
    "output_mtok": ("output_tokens", 1000000, {"family": "tokens", "direction": "output"}),
    "cache_read_mtok": (
        "cache_read_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "token_type": "cache_read"},
    ),
    "cache_write_mtok": (
        "cache_write_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "token_type": "cache_write"},
    ),
    "cache_write_5m_mtok": (
        "cache_write_5m_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_write_1h_mtok": (
        "cache_write_1h_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_text_mtok": ("input_text_tokens", 1000000, {"family": "tokens", "direction": "input", "modality": "text"}),
    "output_text_mtok": (
        "output_text_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "text"},
    ),
    "cache_text_read_mtok": (
        "cache_text_read_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "text", "token_type": "cache_read"},
    ),
    "cache_text_write_mtok": (
        "cache_text_write_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "text", "token_type": "cache_write"},
    ),
    "cache_text_write_5m_mtok": (
        "cache_text_write_5m_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "text", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_text_write_1h_mtok": (
        "cache_text_write_1h_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "text", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_audio_mtok": (
        "input_audio_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio"},
    ),
    "output_audio_mtok": (
        "output_audio_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "audio"},
    ),
    "cache_audio_read_mtok": (
        "cache_audio_read_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio", "token_type": "cache_read"},
    ),
    "cache_audio_write_mtok": (
        "cache_audio_write_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio", "token_type": "cache_write"},
    ),
    "cache_audio_write_5m_mtok": (
        "cache_audio_write_5m_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_audio_write_1h_mtok": (
        "cache_audio_write_1h_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_image_mtok": (
        "input_image_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image"},
    ),
    "output_image_mtok": (
        "output_image_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "image"},
    ),
    "cache_image_read_mtok": (
        "cache_image_read_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image", "token_type": "cache_read"},
    ),
    "cache_image_write_mtok": (
        "cache_image_write_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image", "token_type": "cache_write"},
    ),
    "cache_image_write_5m_mtok": (
        "cache_image_write_5m_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_image_write_1h_mtok": (
        "cache_image_write_1h_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_video_mtok": (
        "input_video_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video"},
    ),
    "output_video_mtok": (
        "output_video_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "video"},
    ),
    "cache_video_read_mtok": (
        "cache_video_read_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video", "token_type": "cache_read"},
    ),
    "cache_video_write_mtok": (
        "cache_video_write_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video", "token_type": "cache_write"},
    ),
    "cache_video_write_5m_mtok": (
        "cache_video_write_5m_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_video_write_1h_mtok": (
        "cache_video_write_1h_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_tool_mtok": ("input_tool_tokens", 1000000, {"family": "tokens", "direction": "input", "token_type": "tool"}),
    "input_text_tool_mtok": (
        "input_text_tool_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "text", "token_type": "tool"},
    ),
    "input_audio_tool_mtok": (
        "input_audio_tool_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "audio", "token_type": "tool"},
    ),
    "input_image_tool_mtok": (
        "input_image_tool_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "image", "token_type": "tool"},
    ),
    "input_video_tool_mtok": (
        "input_video_tool_tokens",
        1000000,
        {"family": "tokens", "direction": "input", "modality": "video", "token_type": "tool"},
    ),
    "output_reasoning_mtok": (
        "output_reasoning_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "token_type": "reasoning"},
    ),
    "output_text_reasoning_mtok": (
        "output_text_reasoning_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "text", "token_type": "reasoning"},
    ),
    "output_audio_reasoning_mtok": (
        "output_audio_reasoning_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "audio", "token_type": "reasoning"},
    ),
    "output_image_reasoning_mtok": (
        "output_image_reasoning_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "image", "token_type": "reasoning"},
    ),
    "output_video_reasoning_mtok": (
        "output_video_reasoning_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "video", "token_type": "reasoning"},
    ),
    "output_citation_mtok": (
        "output_citation_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "token_type": "citation"},
    ),
    "output_text_citation_mtok": (
        "output_text_citation_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "text", "token_type": "citation"},
    ),
    "output_audio_citation_mtok": (
        "output_audio_citation_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "audio", "token_type": "citation"},
    ),
    "output_image_citation_mtok": (
        "output_image_citation_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "image", "token_type": "citation"},
    ),
    "output_video_citation_mtok": (
        "output_video_citation_tokens",
        1000000,
        {"family": "tokens", "direction": "output", "modality": "video", "token_type": "citation"},
    ),
    "input_mchars": ("input_characters", 1000000, {"family": "characters", "direction": "input"}),
    "input_text_messages_kcount": (
        "input_text_messages",
        1000,
        {"family": "messages", "direction": "input", "modality": "text"},
    ),
    "audio_hours": ("audio_seconds", 3600, {"family": "durations", "modality": "audio"}),
    "input_audio_hours": (
        "input_audio_seconds",
        3600,
        {"family": "durations", "direction": "input", "modality": "audio"},
    ),
    "output_audio_hours": (
        "output_audio_seconds",
        3600,
        {"family": "durations", "direction": "output", "modality": "audio"},
    ),
    "input_gpixels": ("input_pixels", 1000000000, {"family": "pixels", "direction": "input"}),
    "input_document_kpages": ("input_document_pages", 1000, {"family": "document_pages", "direction": "input"}),
    "input_annotated_document_kpages": (
        "input_annotated_document_pages",
        1000,
        {"family": "document_pages", "direction": "input", "page_type": "annotated"},
    ),
    "rerank_searches_kcount": ("rerank_searches", 1000, {"family": "rerank"}),
    "web_searches_kcount": ("web_searches", 1000, {"family": "tool_calls", "tool_type": "web_search"}),
    "social_searches_kcount": ("social_searches", 1000, {"family": "tool_calls", "tool_type": "social_search"}),
    "storage_searches_kcount": ("storage_searches", 1000, {"family": "tool_calls", "tool_type": "storage_search"}),
    "code_executions_kcount": ("code_executions", 1000, {"family": "tool_calls", "tool_type": "code_execution"}),
    "requests_kcount": ("requests", 1000, {"family": "requests"}),
}
