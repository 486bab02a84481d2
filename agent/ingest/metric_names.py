"""The one table of metric names Strata knows: name as received -> layer, canonical name, unit.

Leaf module: imports only :mod:`strata.agent.model`. Used by the collectors and by the OTLP metric
normaliser, so a DCGM, vLLM or Milvus series gets the same layer and canonical name whether it
was scraped locally or pushed over OTLP.

``MetricInfo.unit`` is the unit of the value **as received** (DCGM framebuffer in ``MiB``,
Milvus latency in ``ms``); ``MetricInfo.scale`` converts it to ``canonical_unit``
(``value * scale``). Most entries have ``scale == 1`` and ``canonical_unit == unit``. Units are
UCUM as OTel uses them: ``Cel``, ``W``, ``mJ``, ``%``, ``By``, ``MHz``, ``s``, ``1``,
``{request}``, ``{token}``, ``{segment}``.

Histogram and summary series (``_bucket``, ``_sum``, ``_count``) and counter series
(``_total``, ``_created``) classify through their family: ``_sum`` keeps the family's unit and
canonical name plus ``.sum``; ``_bucket``/``_count`` are counts (unit ``1``, canonical plus
``.bucket``/``.count``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from strata.agent.model import Layer

__all__ = [
    "DERIVED",
    "METRICS",
    "MetricInfo",
    "canonical_info",
    "classify_metric",
]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """Where a metric belongs and what it means.

    ``canonical`` is None for names recognised only by prefix (the layer is known, the
    meaning is not). ``unit`` is the unit of the received value; multiply by ``scale`` to get
    ``canonical_unit``.
    """

    layer: Layer
    canonical: str | None
    unit: str
    scale: float = 1.0
    canonical_unit: str = ""

    @property
    def target_unit(self) -> str:
        """The unit after applying ``scale``."""
        return self.canonical_unit or self.unit


_I = Layer.INFRASTRUCTURE
_D = Layer.DATA
_S = Layer.SERVING
_M = Layer.MODEL

_MIB = 1024.0 * 1024.0


def _m(layer: Layer, canonical: str, unit: str, *, scale: float = 1.0, to: str = "") -> MetricInfo:
    return MetricInfo(layer, canonical, unit, scale, to or unit)


# Keys are family names (as prometheus_client's parser reports them: counters without
# ``_total``) or OTLP metric names. Values as received by that source.
METRICS: Mapping[str, MetricInfo] = {
    # ---- infrastructure: DCGM-exporter field names (the NVML collector emits these names) ----
    "DCGM_FI_DEV_GPU_TEMP": _m(_I, "gpu.temperature", "Cel"),
    "DCGM_FI_DEV_MEMORY_TEMP": _m(_I, "gpu.memory.temperature", "Cel"),
    "DCGM_FI_DEV_FAN_SPEED": _m(_I, "gpu.fan.speed", "%"),
    "DCGM_FI_DEV_POWER_USAGE": _m(_I, "gpu.power.draw", "W"),
    "DCGM_FI_DEV_POWER_USAGE_INSTANT": _m(_I, "gpu.power.draw", "W"),
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": _m(_I, "gpu.power.limit", "W"),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": _m(_I, "gpu.power.limit", "W"),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": _m(_I, "gpu.energy.consumed", "mJ"),
    "DCGM_FI_DEV_GPU_UTIL": _m(_I, "gpu.utilization", "%"),
    "DCGM_FI_DEV_MEM_COPY_UTIL": _m(_I, "gpu.memory.utilization", "%"),
    "DCGM_FI_DEV_ENC_UTIL": _m(_I, "gpu.encoder.utilization", "%"),
    "DCGM_FI_DEV_DEC_UTIL": _m(_I, "gpu.decoder.utilization", "%"),
    "DCGM_FI_DEV_FB_USED": _m(_I, "gpu.memory.used", "MiB", scale=_MIB, to="By"),
    "DCGM_FI_DEV_FB_FREE": _m(_I, "gpu.memory.free", "MiB", scale=_MIB, to="By"),
    "DCGM_FI_DEV_FB_TOTAL": _m(_I, "gpu.memory.total", "MiB", scale=_MIB, to="By"),
    "DCGM_FI_DEV_SM_CLOCK": _m(_I, "gpu.clock.sm", "MHz"),
    "DCGM_FI_DEV_MEM_CLOCK": _m(_I, "gpu.clock.memory", "MHz"),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": _m(_I, "gpu.clock_event_reasons", "1"),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": _m(_I, "gpu.clock_event_reasons", "1"),
    "DCGM_FI_DEV_XID_ERRORS": _m(_I, "gpu.xid", "1"),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": _m(_I, "gpu.ecc.corrected.volatile", "1"),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": _m(_I, "gpu.ecc.uncorrected.volatile", "1"),
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": _m(_I, "gpu.ecc.corrected.aggregate", "1"),
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": _m(_I, "gpu.ecc.uncorrected.aggregate", "1"),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": _m(_I, "gpu.remapped_rows.correctable", "1"),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": _m(_I, "gpu.remapped_rows.uncorrectable", "1"),
    "DCGM_FI_DEV_ROW_REMAP_PENDING": _m(_I, "gpu.remapped_rows.pending", "1"),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": _m(_I, "gpu.remapped_rows.failure", "1"),
    "DCGM_FI_DEV_RETIRED_SBE": _m(_I, "gpu.retired_pages.sbe", "1"),
    "DCGM_FI_DEV_RETIRED_DBE": _m(_I, "gpu.retired_pages.dbe", "1"),
    "DCGM_FI_DEV_RETIRED_PENDING": _m(_I, "gpu.retired_pages.pending", "1"),
    "DCGM_FI_DEV_PCIE_TX_THROUGHPUT": _m(_I, "gpu.pcie.tx.bytes", "KiBy", scale=1024.0, to="By"),
    "DCGM_FI_DEV_PCIE_RX_THROUGHPUT": _m(_I, "gpu.pcie.rx.bytes", "KiBy", scale=1024.0, to="By"),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": _m(_I, "gpu.pcie.replays", "1"),
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": _m(_I, "gpu.nvlink.bandwidth", "1"),
    "DCGM_FI_DEV_POWER_VIOLATION": _m(_I, "gpu.violation.power", "us", scale=1e-6, to="s"),
    "DCGM_FI_DEV_THERMAL_VIOLATION": _m(_I, "gpu.violation.thermal", "us", scale=1e-6, to="s"),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": _m(_I, "gpu.prof.graphics_active", "1"),
    "DCGM_FI_PROF_SM_ACTIVE": _m(_I, "gpu.prof.sm_active", "1"),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": _m(_I, "gpu.prof.tensor_active", "1"),
    "DCGM_FI_PROF_DRAM_ACTIVE": _m(_I, "gpu.prof.dram_active", "1"),
    # NVML-only signals the NVML collector emits under Strata names (no DCGM field).
    "gpu.pcie.tx.throughput": _m(_I, "gpu.pcie.tx.throughput", "By/s"),
    "gpu.pcie.rx.throughput": _m(_I, "gpu.pcie.rx.throughput", "By/s"),
    "gpu.up": _m(_I, "gpu.up", "1"),
    # Triton's DCGM-backed GPU families.
    "nv_gpu_utilization": _m(_I, "gpu.utilization", "1", scale=100.0, to="%"),
    "nv_gpu_memory_total_bytes": _m(_I, "gpu.memory.total", "By"),
    "nv_gpu_memory_used_bytes": _m(_I, "gpu.memory.used", "By"),
    "nv_gpu_power_usage": _m(_I, "gpu.power.draw", "W"),
    "nv_gpu_power_limit": _m(_I, "gpu.power.limit", "W"),
    "nv_energy_consumption": _m(_I, "gpu.energy.consumed", "J", scale=1000.0, to="mJ"),
    "nv_cpu_utilization": _m(_I, "system.cpu.utilization", "1"),
    "nv_cpu_memory_total_bytes": _m(_I, "system.memory.limit", "By"),
    "nv_cpu_memory_used_bytes": _m(_I, "system.memory.usage", "By"),
    # Host (OTel system.* names; the host collector emits these).
    "system.cpu.utilization": _m(_I, "system.cpu.utilization", "1"),
    "system.cpu.time": _m(_I, "system.cpu.time", "s"),
    "system.cpu.load_average.1m": _m(_I, "system.cpu.load_average.1m", "1"),
    "system.memory.usage": _m(_I, "system.memory.usage", "By"),
    "system.memory.limit": _m(_I, "system.memory.limit", "By"),
    "system.memory.available": _m(_I, "system.memory.available", "By"),
    "system.memory.utilization": _m(_I, "system.memory.utilization", "1"),
    # ---- serving: vLLM (V1 names; V0 names kept where a dashboard may still push them) ----
    "vllm:num_requests_running": _m(_S, "serving.requests.running", "{request}"),
    "vllm:num_requests_waiting": _m(_S, "serving.requests.waiting", "{request}"),
    "vllm:kv_cache_usage_perc": _m(_S, "serving.kv_cache.usage", "1"),
    "vllm:gpu_cache_usage_perc": _m(_S, "serving.kv_cache.usage", "1"),
    "vllm:prompt_tokens": _m(_S, "serving.tokens.prompt", "{token}"),
    "vllm:generation_tokens": _m(_S, "serving.tokens.generated", "{token}"),
    "vllm:request_success": _m(_S, "serving.requests.finished", "{request}"),
    "vllm:num_preemptions": _m(_S, "serving.preemptions", "{request}"),
    "vllm:prefix_cache_queries": _m(_S, "serving.prefix_cache.queries", "{token}"),
    "vllm:prefix_cache_hits": _m(_S, "serving.prefix_cache.hits", "{token}"),
    "vllm:time_to_first_token_seconds": _m(_S, "serving.ttft", "s"),
    "vllm:inter_token_latency_seconds": _m(_S, "serving.inter_token_latency", "s"),
    "vllm:time_per_output_token_seconds": _m(_S, "serving.inter_token_latency", "s"),
    "vllm:request_time_per_output_token_seconds": _m(_S, "serving.time_per_output_token", "s"),
    "vllm:e2e_request_latency_seconds": _m(_S, "serving.e2e_latency", "s"),
    "vllm:request_queue_time_seconds": _m(_S, "serving.queue_time", "s"),
    "vllm:request_inference_time_seconds": _m(_S, "serving.inference_time", "s"),
    "vllm:request_prefill_time_seconds": _m(_S, "serving.prefill_time", "s"),
    "vllm:request_decode_time_seconds": _m(_S, "serving.decode_time", "s"),
    "vllm:request_prompt_tokens": _m(_S, "serving.request.prompt_tokens", "{token}"),
    "vllm:request_generation_tokens": _m(_S, "serving.request.generated_tokens", "{token}"),
    # ---- serving: TGI (counters have no _total) ----
    "tgi_request_count": _m(_S, "serving.requests", "{request}"),
    "tgi_request_success": _m(_S, "serving.requests.finished", "{request}"),
    "tgi_request_failure": _m(_S, "serving.requests.failed", "{request}"),
    "tgi_queue_size": _m(_S, "serving.requests.waiting", "{request}"),
    "tgi_batch_current_size": _m(_S, "serving.requests.running", "{request}"),
    "tgi_batch_current_max_tokens": _m(_S, "serving.batch.max_tokens", "{token}"),
    "tgi_batch_total_tokens": _m(_S, "serving.batch.total_tokens", "{token}"),
    "tgi_request_duration": _m(_S, "serving.e2e_latency", "s"),
    "tgi_request_queue_duration": _m(_S, "serving.queue_time", "s"),
    "tgi_request_inference_duration": _m(_S, "serving.inference_time", "s"),
    "tgi_request_mean_time_per_token_duration": _m(_S, "serving.inter_token_latency", "s"),
    "tgi_request_input_length": _m(_S, "serving.request.prompt_tokens", "{token}"),
    "tgi_request_generated_tokens": _m(_S, "serving.request.generated_tokens", "{token}"),
    # ---- serving: Triton (cumulative microsecond counters; TTFT histogram in ms) ----
    "nv_inference_request_success": _m(_S, "serving.requests.finished", "{request}"),
    "nv_inference_request_failure": _m(_S, "serving.requests.failed", "{request}"),
    "nv_inference_count": _m(_S, "serving.inferences", "{inference}"),
    "nv_inference_exec_count": _m(_S, "serving.executions", "{execution}"),
    "nv_inference_request_duration_us": _m(
        _S, "serving.request_time.total", "us", scale=1e-6, to="s"
    ),
    "nv_inference_queue_duration_us": _m(_S, "serving.queue_time.total", "us", scale=1e-6, to="s"),
    "nv_inference_compute_infer_duration_us": _m(
        _S, "serving.inference_time.total", "us", scale=1e-6, to="s"
    ),
    "nv_inference_pending_request_count": _m(_S, "serving.requests.waiting", "{request}"),
    "nv_inference_first_response_histogram_ms": _m(_S, "serving.ttft", "ms", scale=1e-3, to="s"),
    "nv_model_load_duration_secs": _m(_S, "serving.model.load_time", "s"),
    # ---- serving: llama.cpp server ----
    "llamacpp:prompt_tokens": _m(_S, "serving.tokens.prompt", "{token}"),
    "llamacpp:prompt_tokens_cached": _m(_S, "serving.tokens.prompt_cached", "{token}"),
    "llamacpp:tokens_predicted": _m(_S, "serving.tokens.generated", "{token}"),
    "llamacpp:prompt_seconds": _m(_S, "serving.prompt_time.total", "s"),
    "llamacpp:tokens_predicted_seconds": _m(_S, "serving.generation_time.total", "s"),
    "llamacpp:n_decode": _m(_S, "serving.decode_calls", "1"),
    "llamacpp:prompt_tokens_seconds": _m(_S, "serving.throughput.prompt", "{token}/s"),
    "llamacpp:predicted_tokens_seconds": _m(_S, "serving.throughput.generated", "{token}/s"),
    "llamacpp:requests_processing": _m(_S, "serving.requests.running", "{request}"),
    "llamacpp:requests_deferred": _m(_S, "serving.requests.waiting", "{request}"),
    "llamacpp:kv_cache_usage_ratio": _m(_S, "serving.kv_cache.usage", "1"),
    "llamacpp:kv_cache_tokens": _m(_S, "serving.kv_cache.tokens", "{token}"),
    # ---- serving: Ollama (no /metrics; the Ollama collector emits these names) ----
    "ollama.models.loaded": _m(_S, "serving.models.loaded", "{model}"),
    "ollama.model.size": _m(_S, "serving.model.size", "By"),
    "ollama.model.size_vram": _m(_S, "serving.model.vram", "By"),
    "ollama.api.response_time": _m(_S, "serving.api.response_time", "s"),
    # ---- serving: OTel GenAI server metrics ----
    "gen_ai.server.request.duration": _m(_S, "serving.e2e_latency", "s"),
    "gen_ai.server.time_to_first_token": _m(_S, "serving.ttft", "s"),
    "gen_ai.server.time_per_output_token": _m(_S, "serving.time_per_output_token", "s"),
    "gen_ai_server_request_duration_seconds": _m(_S, "serving.e2e_latency", "s"),
    "gen_ai_server_time_to_first_token_seconds": _m(_S, "serving.ttft", "s"),
    "gen_ai_server_time_per_output_token_seconds": _m(_S, "serving.time_per_output_token", "s"),
    # ---- model: OTel GenAI client metrics (names kept; they are already canonical) ----
    "gen_ai.client.token.usage": _m(_M, "gen_ai.client.token.usage", "{token}"),
    "gen_ai.client.operation.duration": _m(_M, "gen_ai.client.operation.duration", "s"),
    "gen_ai.client.operation.time_to_first_chunk": _m(
        _M, "gen_ai.client.operation.time_to_first_chunk", "s"
    ),
    "gen_ai.client.operation.time_per_output_chunk": _m(
        _M, "gen_ai.client.operation.time_per_output_chunk", "s"
    ),
    "gen_ai_client_token_usage": _m(_M, "gen_ai.client.token.usage", "{token}"),
    "gen_ai_client_operation_duration_seconds": _m(_M, "gen_ai.client.operation.duration", "s"),
    "gen_ai_client_operation_time_to_first_chunk_seconds": _m(
        _M, "gen_ai.client.operation.time_to_first_chunk", "s"
    ),
    # ---- data: Weaviate (old-style unprefixed LSM families) ----
    "lsm_active_segments": _m(_D, "vectordb.segments.active", "{segment}"),
    "lsm_objects_bucket_segment_count": _m(_D, "vectordb.segments.objects_bucket", "{segment}"),
    "lsm_compressed_vecs_bucket_segment_count": _m(
        _D, "vectordb.segments.compressed_vectors_bucket", "{segment}"
    ),
    "lsm_segment_count": _m(_D, "vectordb.segments", "{segment}"),
    "lsm_segment_size": _m(_D, "vectordb.segment.size", "By"),
    "lsm_segment_objects": _m(_D, "vectordb.segment.entries", "{entry}"),
    "lsm_segment_unloaded": _m(_D, "vectordb.segments.unloaded", "{segment}"),
    "lsm_memtable_size": _m(_D, "vectordb.memtable.size", "By"),
    "lsm_memtable_durations_ms": _m(_D, "vectordb.memtable.duration", "ms", scale=1e-3, to="s"),
    "lsm_bloom_filters_duration_ms": _m(
        _D, "vectordb.bloom_filter.duration", "ms", scale=1e-3, to="s"
    ),
    "object_count": _m(_D, "vectordb.rows", "{row}"),
    "vector_index_size": _m(_D, "vectordb.vector_index.size", "{vector}"),
    "vector_index_tombstones": _m(_D, "vectordb.vector_index.tombstones", "{vector}"),
    "vector_index_queue_insert_count": _m(_D, "vectordb.vector_index.queue_inserts", "{vector}"),
    "vector_segments_sum": _m(_D, "vectordb.pq_segments", "{segment}"),
    "shards_loaded": _m(_D, "vectordb.shards.loaded", "{shard}"),
    "shards_unloaded": _m(_D, "vectordb.shards.unloaded", "{shard}"),
    "shards_loading": _m(_D, "vectordb.shards.loading", "{shard}"),
    "shards_unloading": _m(_D, "vectordb.shards.unloading", "{shard}"),
    "queries_durations_ms": _m(_D, "vectordb.query.latency", "ms", scale=1e-3, to="s"),
    "weaviate_lsm_bucket_segment_total": _m(_D, "vectordb.segments.by_strategy", "{segment}"),
    "weaviate_lsm_bucket_compaction_in_progress": _m(
        _D, "vectordb.compactions.running", "{compaction}"
    ),
    # ---- data: Milvus (latency histograms in ms) ----
    "milvus_datacoord_segment_num": _m(_D, "vectordb.segments", "{segment}"),
    "milvus_datacoord_stored_rows_num": _m(_D, "vectordb.rows", "{row}"),
    "milvus_datacoord_stored_rows_count": _m(_D, "vectordb.rows.stored", "{row}"),
    "milvus_datacoord_stored_binlog_size": _m(_D, "vectordb.storage.binlog_size", "By"),
    "milvus_datacoord_segment_binlog_file_count": _m(_D, "vectordb.segment.binlog_files", "1"),
    "milvus_querynode_segment_num": _m(_D, "vectordb.segments.loaded", "{segment}"),
    "milvus_querynode_entity_num": _m(_D, "vectordb.rows.loaded", "{row}"),
    "milvus_querynode_entity_size": _m(_D, "vectordb.rows.loaded_size", "By"),
    "milvus_proxy_sq_latency": _m(_D, "vectordb.query.latency", "ms", scale=1e-3, to="s"),
    "milvus_proxy_collection_sq_latency": _m(
        _D, "vectordb.collection.query.latency", "ms", scale=1e-3, to="s"
    ),
    "milvus_proxy_req_latency": _m(_D, "vectordb.request.latency", "ms", scale=1e-3, to="s"),
    "milvus_proxy_req_count": _m(_D, "vectordb.requests", "{request}"),
    "milvus_proxy_search_vectors_count": _m(_D, "vectordb.search.vectors", "{vector}"),
    "milvus_querynode_sq_req_latency": _m(
        _D, "vectordb.querynode.latency", "ms", scale=1e-3, to="s"
    ),
    # ---- data: Qdrant (also with a configured ``qdrant_`` prefix, see classify_metric) ----
    "collections_total": _m(_D, "vectordb.collections", "{collection}"),
    "collections_vector_total": _m(_D, "vectordb.vectors", "{vector}"),
    "collection_vectors": _m(_D, "vectordb.vectors", "{vector}"),
    "collection_points": _m(_D, "vectordb.rows", "{row}"),
    "collection_running_optimizations": _m(_D, "vectordb.optimizations.running", "1"),
    "collection_update_queue_length": _m(_D, "vectordb.update_queue.length", "1"),
    "collection_dead_replicas": _m(_D, "vectordb.replicas.dead", "1"),
    "rest_responses": _m(_D, "vectordb.requests", "{request}"),
    "grpc_responses": _m(_D, "vectordb.requests", "{request}"),
    "rest_responses_duration_seconds": _m(_D, "vectordb.request.latency", "s"),
    "grpc_responses_duration_seconds": _m(_D, "vectordb.request.latency", "s"),
    # Qdrant /telemetry (the Qdrant collector emits these names).
    "qdrant.shard.segments": _m(_D, "vectordb.segments", "{segment}"),
    "qdrant.shard.points": _m(_D, "vectordb.rows", "{row}"),
    "qdrant.segment.points": _m(_D, "vectordb.segment.entries", "{entry}"),
    "qdrant.segment.size": _m(_D, "vectordb.segment.size", "By"),
    # Generic OTel DB client metric (vector-DB clients instrumented with OTel).
    "db.client.operation.duration": _m(_D, "db.client.operation.duration", "s"),
}

# Signals Strata derives itself (collectors/profiles.py, collectors/nvml.py, agent/scheduler.py).
# Their sample name *is* the canonical name.
DERIVED: Mapping[str, MetricInfo] = {
    name: _m(layer, name, unit)
    for name, layer, unit in (
        ("gpu.throttle.gpu_idle", _I, "1"),
        ("gpu.throttle.applications_clocks", _I, "1"),
        ("gpu.throttle.sw_power_cap", _I, "1"),
        ("gpu.throttle.hw_slowdown", _I, "1"),
        ("gpu.throttle.sync_boost", _I, "1"),
        ("gpu.throttle.sw_thermal", _I, "1"),
        ("gpu.throttle.hw_thermal", _I, "1"),
        ("gpu.throttle.hw_power_brake", _I, "1"),
        ("gpu.throttle.display_clock", _I, "1"),
        ("gpu.throttle.thermal", _I, "1"),
        ("gpu.throttle.power", _I, "1"),
        ("vectordb.shard.segments", _D, "{segment}"),
        ("vectordb.shard.entries_per_segment", _D, "{entry}"),
        ("vectordb.segments.by_state", _D, "{segment}"),
        ("vectordb.query.latency.p50", _D, "s"),
        ("vectordb.query.latency.p95", _D, "s"),
        ("vectordb.request.latency.p50", _D, "s"),
        ("vectordb.request.latency.p95", _D, "s"),
        ("vectordb.request.rate", _D, "{request}/s"),
        ("serving.request.rate", _S, "{request}/s"),
        ("serving.error.rate", _S, "{request}/s"),
        ("serving.error.ratio", _S, "1"),
        ("serving.ttft.p50", _S, "s"),
        ("serving.ttft.p95", _S, "s"),
        ("serving.e2e_latency.p50", _S, "s"),
        ("serving.e2e_latency.p95", _S, "s"),
        ("serving.e2e_latency.mean", _S, "s"),
        ("serving.inter_token_latency.p50", _S, "s"),
        ("serving.inter_token_latency.p95", _S, "s"),
        ("serving.queue_depth", _S, "{request}"),
        ("serving.tokens.generated.rate", _S, "{token}/s"),
        ("strata.collector.up", _I, "1"),
        ("strata.collector.duration", _I, "s"),
        ("strata.collector.errors", _I, "{error}"),
        ("strata.collector.unsupported", _I, "{field}"),
    )
}

# Layer by prefix, for names not in the tables (longest prefix first).
_PREFIX_LAYERS: tuple[tuple[str, Layer], ...] = (
    ("DCGM_", _I),
    ("nv_gpu_", _I),
    ("nv_energy_", _I),
    ("nv_cpu_", _I),
    ("nv_", _S),
    ("vllm:", _S),
    ("tgi_", _S),
    ("llamacpp:", _S),
    ("ollama.", _S),
    ("gen_ai.server.", _S),
    ("gen_ai_server_", _S),
    ("gen_ai.client.", _M),
    ("gen_ai_client_", _M),
    ("gen_ai.", _M),
    ("milvus_", _D),
    ("knowhere_", _D),
    ("weaviate_", _D),
    ("lsm_", _D),
    ("qdrant_", _D),
    ("qdrant.", _D),
    ("vectordb.", _D),
    ("db.client.", _D),
    ("gpu.", _I),
    ("system.", _I),
    ("serving.", _S),
)

_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")

_BY_CANONICAL: dict[str, MetricInfo] = {}
for _info in (*METRICS.values(), *DERIVED.values()):
    if _info.canonical is not None and _info.canonical not in _BY_CANONICAL:
        _BY_CANONICAL[_info.canonical] = _m(_info.layer, _info.canonical, _info.target_unit)


def canonical_info(canonical: str) -> MetricInfo | None:
    """Info for a canonical name (unit is the canonical unit, scale 1)."""
    return _BY_CANONICAL.get(canonical)


def _exact(name: str) -> MetricInfo | None:
    info = METRICS.get(name) or DERIVED.get(name) or _BY_CANONICAL.get(name)
    if info is None and name.startswith("qdrant_"):
        info = METRICS.get(name[len("qdrant_") :])
    return info


def _series_info(family: MetricInfo, suffix: str) -> MetricInfo:
    """Info for one series of a family: ``_sum`` keeps the unit, buckets/counts are counts."""
    if suffix in ("_total", ""):
        return family
    canonical = family.canonical
    if suffix == "_sum":
        return MetricInfo(
            family.layer,
            None if canonical is None else canonical + ".sum",
            family.unit,
            family.scale,
            family.target_unit,
        )
    if suffix == "_created":
        created = None if canonical is None else canonical + ".created"
        return MetricInfo(family.layer, created, "s")
    tail = ".bucket" if suffix == "_bucket" else ".count"
    return MetricInfo(family.layer, None if canonical is None else canonical + tail, "1")


def classify_metric(name: str) -> MetricInfo | None:
    """Layer, canonical name and unit for a metric name as received.

    Exact match first (family names, OTLP names, Strata's own names, canonical names), then
    the same after removing one histogram/counter suffix (``_bucket``, ``_count``, ``_sum``,
    ``_total``, ``_created``), then prefix rules (``vllm:`` serving, ``milvus_`` data,
    ``DCGM_`` infrastructure, ...), which give a layer with ``canonical=None``.

    Args:
        name: the metric or series name exactly as received.

    Returns:
        The info, or None when Strata does not recognise the name at all.
    """
    info = _exact(name)
    if info is not None:
        return info
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            family = _exact(name[: -len(suffix)])
            if family is not None:
                return _series_info(family, suffix)
    for prefix, layer in _PREFIX_LAYERS:
        if name.startswith(prefix):
            return MetricInfo(layer, None, _unit_from_name(name))
    return None


def _unit_from_name(name: str) -> str:
    """Best-effort unit from Prometheus naming conventions, for prefix-only matches."""
    base = name
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if name.endswith(("_bucket", "_count")):
        return "1"
    for tail, unit in (
        ("_seconds", "s"),
        ("_ms", "ms"),
        ("_us", "us"),
        ("_bytes", "By"),
        ("_ratio", "1"),
        ("_perc", "1"),
        ("_celsius", "Cel"),
        ("_watts", "W"),
        ("_joules", "J"),
    ):
        if base.endswith(tail):
            return unit
    return "1"
