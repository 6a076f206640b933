"""The end-of-series self-check questions (notebook 10): the course text's four retrieval prompts and
seven interview questions, rewritten, each with a model answer and the key points a good answer makes.

``course_utils.quiz.SelfCheckQuiz`` asks them; this module only holds them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One self-check question.

    Args:
        source: where it comes from in the course text, e.g. ``"Retrieval prompt 1"``.
        prompt: the question the learner answers.
        model_answer: a worked answer, plain text; paragraphs separated by blank lines.
        key_points: short statements, one idea each, that a good answer contains.
    """

    source: str
    prompt: str
    model_answer: str
    key_points: tuple[str, ...]

    def __post_init__(self):
        for name in ("source", "prompt", "model_answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Question.{name} must be a non-empty string, got {value!r}.")
        points = () if isinstance(self.key_points, str) else tuple(self.key_points)
        if not points or not all(isinstance(p, str) and p.strip() for p in points):
            raise ValueError("Question.key_points must be a non-empty sequence of non-empty strings, "
                             f"got {self.key_points!r}.")
        object.__setattr__(self, "key_points", points)  # a list becomes a tuple; the dataclass stays frozen


# The figures tied to "this course" are the ones the notebooks measured: text guidance on shapes
# (notebook 05), the shapes VAE (06) and the digits speed table (09). Nothing else is quoted as ours.
SELF_CHECK: tuple[Question, ...] = (
    Question(
        source="Retrieval prompt 1",
        prompt=("From memory: write x_t in closed form in terms of x_0 and define every symbol. What does "
                "\"variance preserving\" mean here, and why does it help training stay stable?"),
        model_answer=(
            "x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,   ε ~ N(0, I).\n\n"
            "x_0 is a clean training image (scaled to about [−1, 1]) and ε is standard Gaussian noise of the "
            "same shape, drawn fresh for each example. β_t is the variance of the noise the one-step chain adds "
            "at step t, α_t = 1 − β_t, and ᾱ_t (\"alpha bar\") is the product of the α's over every step up to "
            "and including t; it falls from almost 1 to almost 0. √ᾱ_t scales the signal and √(1 − ᾱ_t) the "
            "noise. Because this is a closed form, training picks a random t and builds x_t in one line "
            "instead of running t noising steps.\n\n"
            "Variance preserving: the two squared coefficients add up to one, so noise replaces signal instead "
            "of being piled on top of it. For data with unit variance, Var(x_t) = ᾱ_t · 1 + (1 − ᾱ_t) · 1 = 1 "
            "at every t. That keeps the network's input on one scale at every noise level (one network serves "
            "all timesteps without learning a rescaling), keeps the target ε at unit variance so losses at "
            "different t are comparable, and makes the chain end at x_T ≈ N(0, I) (ᾱ_T ≈ 0): exactly the "
            "distribution sampling starts from."),
        key_points=(
            "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with ε ~ N(0, I)",
            "ᾱ_t is the running product of (1 − β_s), falling from about 1 to about 0",
            "Variance preserving: Var(x_t) stays 1 when the data has unit variance",
            "Inputs keep one scale at every t, and x_T ≈ N(0, I) is where sampling starts",
            "The closed form lets training jump to any t in one step",
        ),
    ),
    Question(
        source="Interview Q1",
        prompt=("Walk through what the forward process does to an image. What role does the noise schedule play, "
                "and what goes wrong when it is poorly chosen?"),
        model_answer=(
            "The forward process is a fixed recipe, with nothing learned, that turns a clean image into noise "
            "over T steps (T = 1000 in DDPM). Each step shrinks the current image slightly and adds a little "
            "Gaussian noise: q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I). Chaining the steps gives the "
            "closed form x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, so training can go straight to any t.\n\n"
            "The noise schedule is the sequence of β_t, or equivalently the curve ᾱ_t. It fixes the "
            "signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at every step, and with it which noise levels the model "
            "practises on and how the training effort is shared between them. It must end with ᾱ_T ≈ 0, so "
            "that x_T cannot be told apart from N(0, I), the noise sampling starts from.\n\n"
            "Why the choice matters: DDPM's linear schedule wipes out small images early and spends many of "
            "its last steps on inputs that are already almost pure noise. The cosine schedule (Nichol & "
            "Dhariwal, 2021) removes signal more gently at first and keeps structure longer, so more steps "
            "carry something to learn. A poor schedule wastes steps and capacity, which shows up as slower "
            "training or worse samples."),
        key_points=(
            "A fixed (not learned) chain adding Gaussian noise over T steps",
            "The closed form x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε reaches any t directly",
            "The schedule (β_t, or ᾱ_t) sets the signal-to-noise ratio of each step",
            "ᾱ_T ≈ 0, so the chain ends at pure Gaussian noise",
            "Cosine keeps structure longer than linear and wastes fewer steps",
        ),
    ),
    Question(
        source="Interview Q2",
        prompt="What does the denoising network output: the noise ε or the clean image x_0? What are the trade-offs?",
        model_answer=(
            "Usually the noise. The network ε_θ(x_t, t) is trained with a plain mean-squared error against the "
            "noise that was actually added, L = ‖ε − ε_θ(x_t, t)‖² (the \"simple\" loss of Ho et al., 2020).\n\n"
            "In principle the choices are interchangeable: given x_t and t, the closed form turns one into the "
            "other, x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t. What differs is how errors are weighted across "
            "timesteps and how well behaved the numbers are. An ε-loss equals an x_0-loss multiplied by the "
            "signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), so the two spend their effort on different noise levels. "
            "Getting x_0 from a predicted ε divides by √ᾱ_t, which is tiny at the noisiest steps, so small "
            "errors in ε are blown up there.\n\n"
            "v-prediction, v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, mixes the two so that the target stays well scaled at "
            "both ends of the schedule; progressive distillation and Stable Diffusion 2's 768-pixel model use "
            "it. Diffusers calls this choice prediction_type: \"epsilon\", \"sample\" or \"v_prediction\"."),
        key_points=(
            "Usually ε, trained with ‖ε − ε_θ(x_t, t)‖²",
            "ε and x_0 convert into each other through x_t and ᾱ_t",
            "They weight timesteps differently (ε-loss = SNR-weighted x_0-loss)",
            "Recovering x_0 from ε divides by √ᾱ_t, unstable at high noise",
            "v-prediction blends both and stays well scaled at both ends",
        ),
    ),
    Question(
        source="Interview Q5",
        prompt="DDIM: how does it differ from DDPM sampling, and in which situations is it the sampler you want?",
        model_answer=(
            "DDIM (Song, Meng & Ermon, 2021) is another sampler for the same trained model: no retraining, "
            "because it keeps DDPM's training objective and the same noised marginals q(x_t | x_0). Each step "
            "estimates x̂_0 from the network's ε, then re-noises that estimate to an earlier noise level using "
            "the same ε, so it moves along the path the prediction implies. A parameter η sets how much fresh noise each step injects: η = 1 behaves like DDPM, and "
            "η = 0 injects none, so sampling becomes deterministic, a discretised ODE rather than a random "
            "chain.\n\n"
            "Since the update does not rely on visiting every timestep, it can skip most of them: 20–50 steps "
            "come close to 1,000-step DDPM. On this course's digits, DDIM with 50 steps scored 1.04x the FID of "
            "1,000-step DDPM.\n\n"
            "Reach for it when you want fast sampling from a model already trained as a DDPM, reproducible "
            "outputs (the same starting noise always gives the same image), or inversion: running the "
            "deterministic update backwards maps an image to its noise, which makes editing possible and gives "
            "smooth interpolations between images by interpolating their noises."),
        key_points=(
            "Same trained model as DDPM: a new sampler, no retraining",
            "η = 0 makes it a deterministic, ODE-style sampler",
            "It skips timesteps: 20–50 steps come close to 1,000-step quality",
            "Deterministic means reproducible and invertible (editing, interpolation)",
        ),
    ),
    Question(
        source="Interview Q3",
        prompt=("In a few sentences: what does classifier-free guidance do, and what changes as you turn its "
                "scale up or down?"),
        model_answer=(
            "Classifier-free guidance steers a conditional diffusion model towards its condition without a "
            "separate classifier. In training, the condition is swapped for a null one (the empty prompt, or a "
            "null class) on roughly 10% of examples, so a single network learns both ε_cond and ε_uncond. At "
            "every sampling step it is evaluated both ways and the two are extrapolated:\n"
            "ε̂ = ε_uncond + w · (ε_cond − ε_uncond).\n\n"
            "The scale w sets how hard each step is pushed towards \"an image of this prompt\": w = 0 is the "
            "unconditional model, w = 1 the plain conditional one, and larger w buys prompt adherence with "
            "variety, until very large w gives oversaturated, artefact-ridden images. In this course's text "
            "model on shapes, the share of 180 images with the right colour and shape went from 8.9% at w = 0 "
            "to 61.7% at w = 1 and 98.3% at w = 3. Stable Diffusion pipelines default to w = 7.5. The price is "
            "two network evaluations per step."),
        key_points=(
            "The condition is dropped (~10%) in training, so one model learns both",
            "ε̂ = ε_uncond + w (ε_cond − ε_uncond) at every step",
            "Higher w: closer to the prompt, less diversity; too high: artefacts",
            "Two network evaluations per sampling step",
        ),
    ),
    Question(
        source="Retrieval prompt 2",
        prompt=("Build classifier-free guidance up from nothing. How is training changed? Which computation "
                "happens only at sampling time, never in training? What is the scale w for, and what would "
                "images look like at w = 20?"),
        model_answer=(
            "Training: one network learns both a conditional prediction ε(x_t, t, c) and an unconditional one "
            "ε(x_t, t, ∅). The only change to ordinary conditional training is that the condition (class label "
            "or prompt) is replaced by a null token, such as the empty prompt, on a random ~10% of examples. "
            "No classifier is trained, hence the name.\n\n"
            "Sampling: at every step the network runs twice, once with the condition and once with the null "
            "token (in practice as one batch of double size), and the predictions are combined as\n"
            "ε̂ = ε_uncond + w · (ε_cond − ε_uncond).\n"
            "Training never combines them; the extrapolation exists only at inference, and it doubles the "
            "cost of each step. (This is diffusers' convention; Ho & Salimans write the same rule with w "
            "shifted by one.)\n\n"
            "w sets how far along the direction from \"any image\" to \"this condition\" the prediction is "
            "pushed: w = 0 is unconditional, w = 1 plain conditional, w > 1 goes past the conditional model, "
            "trading diversity for adherence. Our text model on shapes drew the right colour and shape in "
            "8.9% / 61.7% / 98.3% of 180 images at w = 0 / 1 / 3.\n\n"
            "At w = 20 the extrapolation overshoots: predictions leave the range the model saw in training, so "
            "images come out oversaturated, with burnt colours, harsh contrast and distorted detail, and "
            "different seeds give nearly the same picture. Useful values are far lower (Stable Diffusion "
            "defaults to 7.5)."),
        key_points=(
            "The condition is replaced by a null token on ~10% of training examples",
            "One network learns both conditional and unconditional predictions",
            "Sampling runs both each step: ε_uncond + w (ε_cond − ε_uncond)",
            "w trades diversity for adherence (w = 0 unconditional, w = 1 conditional)",
            "At w = 20: oversaturated, artefacts, almost no diversity",
        ),
    ),
    Question(
        source="Interview Q6",
        prompt="How does cross-attention let a text prompt shape the image being generated?",
        model_answer=(
            "A text encoder (CLIP's text tower, or T5) turns the prompt into a sequence of token embeddings. "
            "Inside the denoiser, at several resolutions, the image feature map is flattened into one vector "
            "per spatial position, and a cross-attention layer lets every position read from the text:\n"
            "Q = W_Q · image features,  K = W_K · text tokens,  V = W_V · text tokens,\n"
            "output = softmax(Q Kᵀ / √d) · V.\n\n"
            "Each position scores every token, a softmax turns the scores into weights, and the position "
            "receives the weighted average of the tokens' values, which is projected and added back to its "
            "features through a residual connection. Queries come from the image, keys and values from the "
            "text: the text is only read, never changed.\n\n"
            "For one token, its weights over all positions form a map of where in the image that word acts: "
            "the region that should turn red attends strongly to \"red\". That is how the meaning of words "
            "becomes a spatial signal, and why methods such as Prompt-to-Prompt can edit an image by editing "
            "these maps. Because it happens at several resolutions, the text shapes both the coarse layout and "
            "the fine detail."),
        key_points=(
            "A text encoder turns the prompt into token embeddings",
            "Queries come from image features, keys and values from text tokens",
            "softmax(QKᵀ/√d)V is added back to the image features (residual)",
            "Each token's attention weights map where that word acts in the image",
            "It happens at several resolutions of the denoiser",
        ),
    ),
    Question(
        source="Interview Q4",
        prompt="Why do systems like Stable Diffusion run diffusion in a latent space rather than on pixels?",
        model_answer=(
            "Cost, first. Sampling calls the denoiser at every step, and each call costs roughly in proportion "
            "to the size of its input. A 512×512 RGB image is 786,432 numbers; Stable Diffusion's VAE encodes it "
            "to a 64×64×4 latent, 16,384 numbers: 48x fewer (and 64x fewer spatial positions, which matters even "
            "more for attention). Diffusion is trained and sampled entirely on latents; the encoder prepares the "
            "training data and the decoder runs once at the end to turn the final latent into pixels.\n\n"
            "It is also a division of labour. The autoencoder is trained, with perceptual and adversarial losses "
            "and a light KL penalty, to keep what the eye notices and drop high-frequency detail it does not, "
            "so the diffusion model spends its capacity on the content and layout of images rather than on "
            "pixel-exact texture.\n\n"
            "This course does the same at small scale: our shapes VAE maps 32×32×3 images to 8×8×4 latents, 12x "
            "fewer numbers. The costs: what the VAE cannot reconstruct, the diffusion model cannot produce, and "
            "latents must be rescaled to roughly unit variance before diffusion."),
        key_points=(
            "The denoiser runs at every step, so input size drives the cost",
            "A VAE compresses: 512×512×3 → 64×64×4 in SD, 48x fewer numbers",
            "Diffusion runs on latents; the decoder runs once at the end",
            "The autoencoder keeps perceptual content and drops invisible detail",
            "The VAE's reconstruction quality caps the final quality",
        ),
    ),
    Question(
        source="Interview Q7",
        prompt="Compare the U-Net and the Diffusion Transformer (DiT) as denoising networks.",
        model_answer=(
            "U-Net: a convolutional encoder–decoder. The encoder halves the resolution level by level while "
            "adding channels, the decoder mirrors it back up, and skip connections give each decoder level the "
            "encoder's features at the same resolution, so fine detail survives the bottleneck. Attention "
            "(self-attention, plus cross-attention for text) sits at the lower resolutions, and the timestep "
            "embedding is added inside every residual block.\n\n"
            "DiT (Peebles & Xie, 2023): the (latent) image is patchified, cut into p×p patches that each become "
            "a token with a position embedding, and the tokens go through a stack of identical transformer "
            "blocks at one resolution, with no downsampling; a last layer turns the tokens back into an image-"
            "shaped prediction. Timestep and condition enter through adaLN-Zero: they regress the shift, scale "
            "and gate around each sub-layer, with the gates initialised to zero so every block starts as the "
            "identity.\n\n"
            "In practice, DiT quality improves predictably as compute grows, which is why large recent models "
            "(Stable Diffusion 3, FLUX) use transformer backbones. The U-Net's convolutional prior keeps it "
            "efficient with limited data or compute and at high pixel resolutions, where attention between all "
            "N patches (N² pairs) gets expensive."),
        key_points=(
            "U-Net: a conv encoder–decoder across resolutions, with skip connections",
            "DiT: patchify, then identical transformer blocks at one resolution",
            "DiT conditions through adaLN-Zero (zero-initialised gates)",
            "DiT scales predictably (SD3, FLUX); U-Net is efficient on small data and compute",
        ),
    ),
    Question(
        source="Retrieval prompt 4",
        prompt=("Contrast U-Net and DiT backbones for diffusion. In what sense does a DiT scale better, "
                "which two production models use one, and when is a U-Net still the right choice?"),
        model_answer=(
            "A U-Net is a convolutional encoder–decoder: residual conv blocks take the image down to coarse "
            "resolutions and back up, skip connections carry fine detail across, attention sits at some "
            "resolutions, and the timestep enters as an embedding added inside each block.\n\n"
            "A DiT patchifies the (latent) image into p×p patches, giving N = (H/p)² tokens, runs them through a "
            "plain stack of identical transformer blocks and un-patchifies the result. Conditioning (timestep "
            "and class, or a pooled text embedding) uses adaLN-Zero: the condition regresses a shift, a scale "
            "and a zero-initialised gate for each sub-layer.\n\n"
            "Scaling: the DiT paper found sample quality (FID) improving steadily with compute per image "
            "(Gflops), whether the compute comes from a deeper or wider model or from smaller patches (more "
            "tokens). Identical blocks are easy to grow, shard and optimise, and the tooling built for language "
            "transformers carries over; a U-Net has many hand-set choices (channels per level, where attention "
            "goes) that do not scale as cleanly. Stable Diffusion 3 (an MMDiT) and FLUX.1 are DiT-style "
            "production models.\n\n"
            "Choose a U-Net with small data or a small compute budget, or for high-resolution work in pixel "
            "space: convolutions build in locality and translation equivariance, an inductive bias that learns "
            "from less data, and their cost grows linearly with the number of pixels while attention over all "
            "tokens grows with N². That is why U-Nets remain a sound default for small models like the ones "
            "trained in this course."),
        key_points=(
            "U-Net: a convolutional encoder–decoder with skip connections",
            "DiT: patch tokens through transformer blocks, conditioned by adaLN-Zero",
            "DiT quality improves predictably as compute (Gflops) grows",
            "Stable Diffusion 3 and FLUX use DiT backbones",
            "U-Net still suits small data/compute and high-res pixels (conv inductive bias)",
        ),
    ),
    Question(
        source="Retrieval prompt 3",
        prompt=("You must serve Stable Diffusion XL from an API, each 1024×1024 image in under 2 seconds, on a "
                "single A10G GPU. In priority order, which optimisations do you make, and what does each one buy?"),
        model_answer=(
            "Start from the cost model: time ≈ steps × one U-Net call, plus one VAE decode and the text "
            "encoders. The course text's table puts SDXL at 1024×1024 with 30 DPM++ steps in fp16 at about "
            "10 s on an A10G, so the target needs a 5x cut, and only the step count can deliver that.\n\n"
            "1. Fewer steps, the biggest lever (time is linear in steps): a distilled model that needs 1–4 "
            "steps, such as LCM-LoRA on top of SDXL, or SDXL-Turbo (trained at 512×512, so check its quality "
            "at 1024). Our digits show how little a good few-step sampler costs: DDIM-50 scored 1.04x the FID "
            "of 1,000-step DDPM, and a consistency-distilled student at 2 steps 1.07x.\n"
            "2. Half precision (fp16 or bf16) with memory-efficient attention (PyTorch's "
            "scaled_dot_product_attention, or xformers): half the memory traffic, tensor cores, and attention "
            "at 1024×1024 that fits comfortably.\n"
            "3. torch.compile the U-Net: the course text quotes 20–30% more; compile and warm up at start-up, "
            "not on the first request.\n"
            "4. Cache text embeddings for recurring prompts (cheap, if small), and batch concurrent requests "
            "for throughput, as long as a batch still finishes inside the latency target.\n"
            "5. Decode the VAE in fp32, or use the fp16-fixed SDXL VAE: SDXL's VAE can overflow in fp16 and "
            "give black or speckled images. This guards quality rather than saving time.\n\n"
            "Then measure every change on the A10G itself, one at a time: warm up, time many runs, report the "
            "median and the tail, and compare images on a fixed prompt set. Speed-ups quoted for other cards "
            "or library versions do not transfer."),
        key_points=(
            "Steps first: a distilled 1–4 step model (LCM-LoRA, SDXL-Turbo)",
            "Half precision (fp16/bf16) with memory-efficient SDPA attention",
            "torch.compile (20–30%), cached text embeddings, batched requests",
            "VAE decoded in fp32 (or the fp16-fixed VAE) to avoid artefacts",
            "Each change measured on the A10G itself",
        ),
    ),
)


__all__ = ["SELF_CHECK", "Question"]
