/** A three.js viewer for GLB, OBJ (the server's .obj.zip), STL, FBX and USDZ: orbit, zoom, wireframe, reset. */
import * as THREE from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import { parseModel } from './loaders';

export interface MeshStats {
  vertices: number;
  faces: number;
}

/** The formats the browser draws (three.js's loaders); anything else gets the server's still preview. */
export const DRAWABLE = new Set(['glb', 'obj', 'stl', 'fbx', 'usdz']);

export function countGeometry(root: THREE.Object3D): MeshStats {
  let vertices = 0;
  let faces = 0;
  root.traverse((obj) => {
    const mesh = obj as THREE.Mesh;
    if (!mesh.isMesh || !mesh.geometry) return;
    const geometry = mesh.geometry as THREE.BufferGeometry;
    const position = geometry.getAttribute('position');
    if (!position) return;
    faces += Math.floor((geometry.index ? geometry.index.count : position.count) / 3);
    vertices += geometry.index ? position.count : uniquePositions(position);
  });
  return { vertices, faces };
}

/** Triangle soups (STL, OBJ) repeat each corner per face: count the distinct points, as the server does. */
function uniquePositions(position: THREE.BufferAttribute | THREE.InterleavedBufferAttribute): number {
  const seen = new Set<string>();
  for (let i = 0; i < position.count; i++) seen.add(`${position.getX(i)},${position.getY(i)},${position.getZ(i)}`);
  return seen.size;
}

export class Viewer {
  readonly renderer: THREE.WebGLRenderer;
  private readonly scene = new THREE.Scene();
  private readonly camera = new THREE.PerspectiveCamera(35, 1, 0.01, 100);
  private readonly controls: OrbitControls;
  private model: THREE.Object3D | null = null;
  private wireframe = false;
  private drawUntil = 0;
  private readonly resizeObserver: ResizeObserver;

  constructor(private readonly container: HTMLElement) {
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    const canvas = this.renderer.domElement;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', '3D view of the asset: drag to orbit, scroll or pinch to zoom, arrow keys pan');
    canvas.tabIndex = 0;
    container.appendChild(canvas);
    this.scene.background = new THREE.Color(0xeef0f3);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x666677, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(3, 5, 4);
    this.scene.add(sun);
    this.scene.add(new THREE.GridHelper(4, 16, 0xb8bcc4, 0xd4d7dd));
    this.camera.position.set(2.2, 1.6, 2.8);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = true;
    this.controls.listenToKeyEvents(canvas);
    this.controls.addEventListener('change', () => this.render());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
    this.resize();
    const loop = () => {
      // Textures decode after a model is placed: keep drawing for a moment after each load.
      if (this.controls.update() || performance.now() < this.drawUntil) this.render();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  get canvas(): HTMLCanvasElement {
    return this.renderer.domElement;
  }

  resize(): void {
    const width = Math.max(1, this.container.clientWidth);
    const height = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  render(): void {
    this.renderer.render(this.scene, this.camera);
    // Where the camera is, for the browser tests to tell an orbit and a reset apart.
    const at = this.camera.position.toArray().map((v) => v.toFixed(3)).join(',');
    if (this.container.dataset.camera !== at) this.container.dataset.camera = at;
  }

  /** A file already fetched (with the API key: see files.ts), in one of DRAWABLE's formats. */
  async loadData(format: string, data: ArrayBuffer): Promise<MeshStats> {
    const object = await parseModel(format, data);
    this.clear();
    this.model = object;
    this.scene.add(object);
    this.applyWireframe();
    this.reset();
    this.drawUntil = performance.now() + 3000;
    return countGeometry(object);
  }

  clear(): void {
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((obj) => {
      const mesh = obj as THREE.Mesh;
      if (mesh.isMesh) {
        mesh.geometry?.dispose();
        const materials = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
        materials.forEach((m) => m?.dispose());
      }
    });
    this.model = null;
    this.render();
  }

  setWireframe(on: boolean): void {
    this.wireframe = on;
    this.applyWireframe();
    this.render();
  }

  private applyWireframe(): void {
    this.model?.traverse((obj) => {
      const mesh = obj as THREE.Mesh;
      if (!mesh.isMesh) return;
      const materials = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
      for (const m of materials) {
        if (m && 'wireframe' in m) (m as THREE.MeshStandardMaterial).wireframe = this.wireframe;
      }
    });
  }

  /** Point the camera at the model from the front-right, far enough to see all of it. */
  reset(): void {
    const object = this.model;
    if (!object) return;
    const box = new THREE.Box3().setFromObject(object);
    if (box.isEmpty()) return;
    const size = box.getSize(new THREE.Vector3());
    const centre = box.getCenter(new THREE.Vector3());
    const radius = Math.max(size.x, size.y, size.z) * 0.5 * Math.sqrt(3);
    const distance = (radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2))) * 1.1;
    const direction = new THREE.Vector3(0.55, 0.45, 0.7).normalize();
    this.camera.near = distance / 100;
    this.camera.far = distance * 100;
    this.camera.updateProjectionMatrix();
    // An update without damping spends what is left of a drag's momentum at once; then place the camera.
    this.controls.enableDamping = false;
    this.controls.update();
    this.camera.position.copy(centre).addScaledVector(direction, distance);
    this.controls.target.copy(centre);
    this.controls.update();
    this.controls.enableDamping = true;
    this.render();
  }
}
